//! ConductorOne's side: the `c1.connectorapi.baton.v1.BatonService` protocol a connector in
//! service mode speaks, the `google.rpc` status a finished task reports, and the client
//! credentials (`BATON_CLIENT_ID` / `BATON_CLIENT_SECRET`) with the JWT assertion that
//! exchanges them for a token.

/// Generated `google.rpc` messages: [`rpc::Status`], the status a finished task reports.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod rpc {
    include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
}

/// Generated `c1.connectorapi.baton.v1`: the ConductorOne `BatonService` messages, the tonic
/// client ([`service::baton_service_client::BatonServiceClient`]) and server
/// ([`service::baton_service_server::BatonServiceServer`] with its
/// [`service::baton_service_server::BatonService`] trait). Connector types are
/// [`crate::pb`]'s, the finish status is [`rpc::Status`].
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod service {
    include!(concat!(
        env!("OUT_DIR"),
        "/service/c1.connectorapi.baton.v1.rs"
    ));
}

pub mod credentials;
