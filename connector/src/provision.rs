//! Provisioning: grant, revoke, create account (invite), delete resource.

use crate::bindings::*;
use crate::connector::Connector;
use crate::env::Env;

impl<E: Env> Connector<'_, E> {
    pub fn grant(
        &self,
        _principal: &Resource,
        _entitlement: &Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        Err(ConnectorError::Unimplemented(
            "provisioning is not implemented yet".into(),
        ))
    }

    pub fn revoke(&self, _grant: &Grant) -> Result<RevokeOutcome, ConnectorError> {
        Err(ConnectorError::Unimplemented(
            "provisioning is not implemented yet".into(),
        ))
    }

    pub fn create_account(
        &self,
        _account: &AccountInfo,
    ) -> Result<CreateAccountOutcome, ConnectorError> {
        Err(ConnectorError::Unimplemented(
            "provisioning is not implemented yet".into(),
        ))
    }

    pub fn delete_resource(
        &self,
        _id: &ResourceId,
        _parent: Option<&ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        Err(ConnectorError::Unimplemented(
            "provisioning is not implemented yet".into(),
        ))
    }
}
