//! The scenarios: generated workspaces behind fake Segment servers that behave in different
//! ways, and the requests a sync of each needs at least.

use fakes::segment::{FUNCTION_TYPES, FakeConfig, GenSpec, ReadRate, Workspace};
use std::time::Duration;

/// Every answer of the fake takes this long (unless `--latency-ms` says otherwise).
pub const LATENCY: Duration = Duration::from_millis(20);
/// The connector's page size (`page-size` default).
const PAGE: usize = 200;
const TOKEN: &str = "scale-token";

/// How the fake server treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Keeps connections alive; TCP_NODELAY and one write per answer (hyper's default).
    KeepAlive,
    /// Keeps connections alive like a plain HTTP/1.1 server: Nagle on, head and body in
    /// separate writes.
    Plain,
    /// Like `Plain`, but closes the connection after each answer.
    Close,
}

impl Server {
    pub fn label(self) -> &'static str {
        match self {
            Server::KeepAlive => "keep-alive",
            Server::Plain => "keep-alive, Nagle",
            Server::Close => "close, Nagle",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub users: usize,
    /// `GET /users` carries permissions (no `GET /users/{id}` needed).
    pub lists_carry_permissions: bool,
    pub server: Server,
    pub concurrency: u16,
    /// Token-bucket read limit: (requests per second, burst).
    pub rate: Option<(f64, u32)>,
    /// Only run when asked for by name (or with `all`).
    pub long: bool,
}

impl Scenario {
    const fn new(name: &'static str, users: usize, server: Server, concurrency: u16) -> Scenario {
        Scenario {
            name,
            users,
            lists_carry_permissions: false,
            server,
            concurrency,
            rate: None,
            long: false,
        }
    }

    const fn lists(mut self) -> Scenario {
        self.lists_carry_permissions = true;
        self
    }

    const fn rate(mut self, per_second: f64, burst: u32) -> Scenario {
        self.rate = Some((per_second, burst));
        self
    }

    const fn long(mut self) -> Scenario {
        self.long = true;
        self
    }

    pub fn spec(&self) -> GenSpec {
        GenSpec {
            users: self.users,
            groups: (self.users / 16).max(1),
            invites: (self.users / 50).max(1),
            ..GenSpec::default()
        }
    }

    pub fn workspace(&self) -> Workspace {
        Workspace::generate(11, self.spec())
    }

    pub fn token() -> &'static str {
        TOKEN
    }

    pub fn fake_config(&self, workspace: Workspace, latency: Duration) -> FakeConfig {
        let mut cfg = FakeConfig::new(TOKEN, workspace);
        cfg.latency = latency;
        cfg.list_users_includes_permissions = self.lists_carry_permissions;
        cfg.keep_alive = self.server != Server::Close;
        cfg.nodelay = self.server == Server::KeepAlive;
        cfg.read_rate = self
            .rate
            .map(|(per_second, burst)| ReadRate::new(per_second, burst));
        cfg
    }
}

/// All scenarios, in the order they run.
pub fn all() -> Vec<Scenario> {
    use Server::*;
    vec![
        Scenario::new("1k-keepalive", 1_000, KeepAlive, 4),
        Scenario::new("1k-nagle", 1_000, Plain, 4),
        Scenario::new("1k-close", 1_000, Close, 4),
        Scenario::new("1k-lists", 1_000, Plain, 4).lists(),
        Scenario::new("1k-rate40", 1_000, Plain, 4).rate(40.0, 10),
        Scenario::new("5k-c4", 5_000, Plain, 4),
        Scenario::new("5k-c16", 5_000, Plain, 16),
        Scenario::new("5k-close-c16", 5_000, Close, 16),
        Scenario::new("50k-lists-c16", 50_000, Plain, 16)
            .lists()
            .long(),
        Scenario::new("50k-c16", 50_000, Plain, 16).long(),
    ]
}

fn pages(items: usize) -> usize {
    items.div_ceil(PAGE).max(1)
}

/// The requests a sync of `ws` cannot do without (ARCHITECTURE.md §7): one page per 200 list
/// items, one `GET /users/{id}` per user unless the list carries permissions, the members
/// (users and invitees) of each group, the workspace, and every catalog listing.
pub fn minimal_requests(ws: &Workspace, lists_carry_permissions: bool) -> usize {
    let per_user = if lists_carry_permissions {
        0
    } else {
        ws.users.len()
    };
    let members: usize = ws
        .groups
        .iter()
        .map(|g| pages(g.member_emails.len()) + pages(g.invite_emails.len()))
        .sum();
    let functions: usize = FUNCTION_TYPES
        .iter()
        .map(|t| {
            pages(
                ws.functions
                    .iter()
                    .filter(|f| f.resource_type == *t)
                    .count(),
            )
        })
        .sum();
    1 // GET / (the workspace)
        + pages(ws.users.len())
        + per_user
        + pages(ws.invites.len())
        + pages(ws.groups.len())
        + members
        + pages(ws.roles.len())
        + pages(ws.sources.len())
        + pages(ws.warehouses.len())
        + functions
        + pages(ws.spaces.len())
}
