//! `delete-resource`: removing a user from the workspace, withdrawing an invitation.

use super::steps::{Answer, Steps, Write};
use super::target::same_email;
use crate::bindings::*;
use crate::env::Env;
use crate::ids::{INVITE, USER};

pub(super) fn delete_resource<E: Env>(
    s: &mut Steps<'_, '_, E>,
    id: &ResourceId,
) -> Result<DeleteOutcome, ConnectorError> {
    let deleted = |sent: Result<Answer<_>, ConnectorError>| match sent {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(ConnectorError::NotFound(_)) => Ok(DeleteOutcome::AlreadyDeleted),
        Err(e) => Err(e),
    };
    match id.resource_type.as_str() {
        USER => {
            let user = s.user(
                &id.resource,
                "check the user is still in the workspace; nothing is sent if not",
            )?;
            if user == Answer::Known(None) {
                return Ok(DeleteOutcome::AlreadyDeleted);
            }
            deleted(s.write(&Write::DeleteUser { id: &id.resource }))
        }
        INVITE => {
            let invites =
                s.invites("check the invitation is still pending; nothing is sent if not")?;
            // Withdrawn with the address as Segment lists it.
            let email = match invites.map(|i| i.into_iter().find(|e| same_email(e, &id.resource))) {
                Answer::Known(None) => return Ok(DeleteOutcome::AlreadyDeleted),
                Answer::Known(Some(email)) => email,
                Answer::Planned => id.resource.clone(),
            };
            deleted(s.write(&Write::DeleteInvite { email: &email }))
        }
        other => Err(ConnectorError::Unimplemented(format!(
            "only users and invitations can be deleted through this connector, not a {other}"
        ))),
    }
}
