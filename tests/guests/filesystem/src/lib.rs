//! A connector that tries to read the host's files and to open its own connections. Using
//! `std::fs` and `std::net` makes the component import `wasi:filesystem` and `wasi:sockets`;
//! the host must refuse to load it and name those imports.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "baton-connector",
});

use baton::connector::types::*;
use exports::baton::connector::connector::{GrantRecord, Guest};

struct FileReader;

export!(FileReader);

fn refuse<T>() -> Result<T, ConnectorError> {
    Err(ConnectorError::Unimplemented("this component only reads files".into()))
}

impl Guest for FileReader {
    fn metadata() -> ConnectorMetadata {
        ConnectorMetadata {
            display_name: "File reader".into(),
            description: "Reads /etc/passwd".into(),
            help_url: String::new(),
            capabilities: vec![],
            resource_type_capabilities: vec![],
            account_creation_schema: vec![],
        }
    }

    fn validate() -> Result<(), ConnectorError> {
        std::fs::read_to_string("/etc/passwd").map(|_| ()).map_err(|e| ConnectorError::Internal(e.to_string()))
    }

    fn resource_types() -> Result<Vec<ResourceType>, ConnectorError> {
        // Around the sandbox's HTTP: a raw connection to the metadata service.
        std::net::TcpStream::connect("169.254.169.254:80")
            .map(|_| vec![])
            .map_err(|e| ConnectorError::Internal(e.to_string()))
    }

    fn list_resources(_: String, _: Option<ResourceId>, _: String) -> Result<ResourcePage, ConnectorError> {
        refuse()
    }

    fn list_entitlements(_: Resource, _: String) -> Result<EntitlementPage, ConnectorError> {
        refuse()
    }

    fn list_grants(_: Resource, _: String) -> Result<GrantPage, ConnectorError> {
        refuse()
    }

    fn grant(_: Resource, _: Entitlement) -> Result<GrantOutcome, ConnectorError> {
        refuse()
    }

    fn revoke(_: GrantRecord, _: Resource) -> Result<RevokeOutcome, ConnectorError> {
        refuse()
    }

    fn create_account(_: AccountInfo) -> Result<CreateAccountOutcome, ConnectorError> {
        refuse()
    }

    fn delete_resource(_: ResourceId, _: Option<ResourceId>) -> Result<DeleteOutcome, ConnectorError> {
        refuse()
    }

    fn plan(_: Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        refuse()
    }
}
