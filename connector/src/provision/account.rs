//! `create-account`: in Segment, an account is created by inviting the person to the
//! workspace. Granting workspace membership invites the same way ([`admit`]).

use super::steps::{Steps, Write};
use super::target::same_email;
use crate::bindings::*;
use crate::env::Env;
use crate::ids::WORKSPACE;
use crate::resources::{invite_resource, rid, user_resource};
use crate::segment::model::User;

pub(super) fn create_account<E: Env>(
    s: &mut Steps<'_, '_, E>,
    account: &AccountInfo,
) -> Result<CreateAccountOutcome, ConnectorError> {
    let email = account_email(account)?;
    let workspace = s.workspace("find the workspace the invitation is to")?;
    let ws = rid(
        WORKSPACE,
        &workspace
            .map(|w| w.id)
            .or_stand_in(|| "<workspace id>".into()),
    );
    Ok(match admit(s, &email)? {
        Admission::Pending(existing) => CreateAccountOutcome::ActionRequired(ActionRequired {
            resource: invite_resource(&existing, Some(&ws)),
            message: format!(
                "An invitation to {existing} is already pending; they must accept it to join the workspace."
            ),
        }),
        Admission::Member(user) => {
            CreateAccountOutcome::AlreadyExists(user.map(|u| user_resource(&u, &ws)))
        }
        Admission::Invited => CreateAccountOutcome::ActionRequired(ActionRequired {
            resource: invite_resource(&email, Some(&ws)),
            message: format!(
                "Invitation sent to {email}. The user must accept the email invitation to complete account creation."
            ),
        }),
    })
}

/// Where an address stands after [`admit`].
pub(super) enum Admission {
    /// An invitation was already pending (the address as Segment lists it).
    Pending(String),
    /// The address belongs to a member (the user, when found).
    Member(Option<User>),
    /// An invitation was sent.
    Invited,
}

/// Makes sure `email` is in the workspace or invited to it: invites only when it is neither,
/// and tells which it was.
pub(super) fn admit<E: Env>(
    s: &mut Steps<'_, '_, E>,
    email: &str,
) -> Result<Admission, ConnectorError> {
    if let Some(existing) = pending_invitation(s, email)? {
        return Ok(Admission::Pending(existing));
    }
    if let Some(user) = member(s, email)? {
        return Ok(Admission::Member(Some(user)));
    }
    match s.write_if(&Write::Invite { email }, "only if neither") {
        Ok(_) => Ok(Admission::Invited),
        // Invited or joined between the check and the write. Segment answers 400 "…was
        // already invited to join workspace." for both; a 409 means the same.
        Err(ConnectorError::InvalidArgument(m)) if m.contains("already invited") => {
            already_admitted(s, email)
        }
        Err(ConnectorError::AlreadyExists(_)) => already_admitted(s, email),
        Err(e) => Err(e),
    }
}

fn already_admitted<E: Env>(
    s: &mut Steps<'_, '_, E>,
    email: &str,
) -> Result<Admission, ConnectorError> {
    Ok(match pending_invitation(s, email)? {
        Some(existing) => Admission::Pending(existing),
        None => Admission::Member(member(s, email)?),
    })
}

/// The pending invitation of `email`, as Segment lists it (none in a dry run).
fn pending_invitation<E: Env>(
    s: &mut Steps<'_, '_, E>,
    email: &str,
) -> Result<Option<String>, ConnectorError> {
    let invites = s.invites(&format!("check whether {email} is already invited"))?;
    Ok(invites
        .known()
        .and_then(|invites| invites.into_iter().find(|i| same_email(i, email))))
}

/// The member whose address `email` is (none in a dry run).
fn member<E: Env>(s: &mut Steps<'_, '_, E>, email: &str) -> Result<Option<User>, ConnectorError> {
    let users = s.users(&format!("check whether {email} is already a member"))?;
    Ok(users
        .known()
        .and_then(|users| users.into_iter().find(|u| same_email(&u.email, email))))
}

/// The address to invite: the primary e-mail, else any e-mail, else the profile's `email`, else
/// a login that is an address.
pub(crate) fn account_email(account: &AccountInfo) -> Result<String, ConnectorError> {
    let from_emails = account
        .emails
        .iter()
        .find(|e| e.is_primary)
        .or(account.emails.first())
        .map(|e| e.address.clone());
    let from_profile = account
        .profile
        .iter()
        .find(|f| f.key == "email")
        .and_then(|f| match &f.value {
            ProfileValue::Text(s) => Some(s.clone()),
            _ => None,
        });
    let from_login = Some(account.login.clone()).filter(|l| l.contains('@'));
    let email = from_emails
        .or(from_profile)
        .or(from_login)
        .map(|e| e.trim().to_string())
        .unwrap_or_default();
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(ConnectorError::InvalidArgument(format!(
            "an e-mail address is needed to invite someone to Segment (got {email:?})"
        )));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Connector;
    use crate::provision::target::show;
    use crate::testing::workspace;

    #[test]
    fn the_invited_address_comes_from_emails_profile_or_login() {
        let info = |emails: Vec<Email>, login: &str, profile: Vec<ProfileField>| AccountInfo {
            emails,
            login: login.into(),
            profile,
            resource_type: String::new(),
        };
        let e = |a: &str, p: bool| Email {
            address: a.into(),
            is_primary: p,
        };
        assert_eq!(
            account_email(&info(
                vec![e("b@x.io", false), e("a@x.io", true)],
                "",
                vec![]
            ))
            .unwrap(),
            "a@x.io"
        );
        let profile = vec![ProfileField {
            key: "email".into(),
            value: ProfileValue::Text(" c@x.io ".into()),
        }];
        assert_eq!(account_email(&info(vec![], "", profile)).unwrap(), "c@x.io");
        assert_eq!(
            account_email(&info(vec![], "d@x.io", vec![])).unwrap(),
            "d@x.io"
        );
        assert!(account_email(&info(vec![], "bob", vec![])).is_err());
        assert!(account_email(&info(vec![e("no at sign.io", true)], "", vec![])).is_err());
    }

    #[test]
    fn segment_saying_already_invited_at_the_write_is_reported_not_failed() {
        let account = AccountInfo {
            emails: vec![Email {
                address: "late@x.io".into(),
                is_primary: true,
            }],
            login: String::new(),
            profile: vec![],
            resource_type: String::new(),
        };
        // Invited by someone else between the check and the write: Segment's live answer is
        // a 400; the second look finds the invitation.
        let env = workspace::env("[]");
        let looks = std::cell::Cell::new(0);
        env.route_with(workspace::INVITES, move |_| {
            looks.set(looks.get() + 1);
            let invites = if looks.get() == 1 {
                "[]"
            } else {
                r#"["late@x.io"]"#
            };
            (
                200,
                format!(r#"{{"data":{{"invites":{invites},"pagination":{{"current":"MA=="}}}}}}"#),
            )
        });
        env.route(
            "POST /invites",
            400,
            r#"{"errors":[{"type":"bad-request","message":"One or more email address was already invited to join workspace."}]}"#,
        );
        let c = Connector::new(&env, &Default::default());
        match c.create_account(&account).unwrap() {
            CreateAccountOutcome::ActionRequired(a) => {
                assert!(a.message.contains("already pending"), "{}", a.message);
                assert_eq!(show(&a.resource.id), "invite:late@x.io");
            }
            other => panic!("expected the pending invitation, got {other:?}"),
        }
        assert_eq!(env.writes().len(), 1, "the invitation is not sent again");

        // A 409 for an address that turns out to be a member's.
        let env = workspace::env("[]");
        env.route(
            "POST /invites",
            409,
            r#"{"errors":[{"type":"conflict","message":"already exists"}]}"#,
        );
        let c = Connector::new(&env, &Default::default());
        assert!(matches!(
            c.create_account(&account),
            Ok(CreateAccountOutcome::AlreadyExists(None))
        ));
        assert_eq!(env.writes().len(), 1);
    }
}
