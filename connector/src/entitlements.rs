//! `list-entitlements`: membership of the workspace, of each group and of each role, and one
//! entitlement per role on every source, warehouse, function and space (see `catalog`).

use crate::bindings::*;
use crate::catalog::{HeldRoles, RoleCatalog, scoped_roles};
use crate::connector::{Connector, keys};
use crate::env::Env;
use crate::errors::to_connector_error;
use crate::ids::*;
use crate::segment::model::RolesPage;

fn entitlement(
    resource: &Resource,
    slug: &str,
    display_name: String,
    description: String,
    purpose: Purpose,
    grantable_to: &[&str],
) -> Entitlement {
    Entitlement {
        id: entitlement_id(&resource.id.resource_type, &resource.id.resource, slug),
        resource: resource.id.clone(),
        display_name,
        description,
        slug: slug.into(),
        purpose,
        grantable_to: grantable_to.iter().map(|s| s.to_string()).collect(),
    }
}

impl<E: Env> Connector<'_, E> {
    pub fn list_entitlements(
        &self,
        resource: &Resource,
        _token: &str,
    ) -> Result<EntitlementPage, ConnectorError> {
        let name = &resource.display_name;
        let items = match resource.id.resource_type.as_str() {
            WORKSPACE => vec![entitlement(
                resource,
                MEMBER,
                format!("{name} Workspace Member"),
                format!("Member of the {name} Segment workspace"),
                Purpose::Assignment,
                &[USER],
            )],
            GROUP => vec![entitlement(
                resource,
                MEMBER,
                format!("{name} Group Member"),
                format!("Member of the {name} user group"),
                Purpose::Assignment,
                &[USER, INVITE],
            )],
            ROLE => vec![entitlement(
                resource,
                MEMBER,
                format!("{name} Role"),
                format!("Holds the {name} role on the whole workspace"),
                Purpose::Assignment,
                &[USER, GROUP],
            )],
            other => match Scope::from_resource_type(other) {
                Some(scope) => {
                    let catalog = self.role_catalog()?;
                    let held = self.held_roles()?;
                    scoped_roles(&catalog, &held, scope)
                        .into_iter()
                        .map(|role| {
                            let description = if role.description.is_empty() {
                                role.name.clone()
                            } else {
                                format!("{} - {}", role.name, role.description)
                            };
                            entitlement(
                                resource,
                                &role.slug,
                                format!("{name} {}", role.name),
                                description,
                                Purpose::Permission,
                                &[USER, GROUP],
                            )
                        })
                        .collect()
                }
                None => vec![],
            },
        };
        Ok(EntitlementPage {
            items,
            next_page_token: String::new(),
            warnings: vec![],
        })
    }

    /// The workspace's roles, fetched once per session.
    pub(crate) fn role_catalog(&self) -> Result<RoleCatalog, ConnectorError> {
        if let Some(roles) = self.cache_get(keys::ROLES) {
            return Ok(RoleCatalog::new(roles));
        }
        let roles = self
            .api
            .all::<RolesPage>("/roles", "")
            .map_err(|e| to_connector_error(&e))?;
        self.cache_put(keys::ROLES, &roles);
        Ok(RoleCatalog::new(roles))
    }

    /// Which roles are held on which scope, over every user and group. Built from the
    /// permissions recorded while listing users and groups; loads them itself when the session
    /// does not have them (a host without a session store, or a sync that skipped those types).
    pub(crate) fn held_roles(&self) -> Result<HeldRoles, ConnectorError> {
        if let Some(held) = self.cache_get::<HeldRoles>(keys::HELD_ROLES) {
            return Ok(held);
        }
        // From each page's record; principal by principal when a page's record lacks it.
        let held = match (self.user_pages()?.held, self.group_pages()?.held) {
            (Some(mut users), Some(groups)) => {
                users.merge(groups);
                users
            }
            _ => {
                let mut held = HeldRoles::default();
                self.each_user_permissions(|_, permissions| held.add(permissions))?;
                self.each_group_permissions(|_, permissions| held.add(permissions))?;
                held
            }
        };
        self.cache_put(keys::HELD_ROLES, &held);
        Ok(held)
    }
}
