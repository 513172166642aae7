//! Which IP addresses a run may connect to. A tenant's base URL or allowed origin that names
//! (or resolves to) this machine, the private network or a cloud metadata service would turn the
//! host into a proxy into places the tenant has no business in. So runs with a restricted
//! policy (every tenant of `serve`) connect to public addresses only, unless the operator allows
//! a class. The check is made on the addresses actually connected to (see `resolve.rs`), so a
//! name that resolves to a public address when the tenants file is read and to a private one
//! later (DNS rebinding) is refused too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), fc00::/7 (unique local).
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// Cloud instance metadata services (169.254.169.254, 169.254.170.2, fd00:ec2::254,
    /// 100.100.100.200): never allowed to a tenant.
    Metadata,
    /// Unspecified, broadcast, multicast, documentation and other reserved ranges: never
    /// allowed to a tenant.
    Reserved,
    Public,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::Reserved => "reserved",
            AddressClass::Public => "public",
        })
    }
}

impl std::str::FromStr for AddressClass {
    type Err = String;

    /// The classes an operator may allow: `loopback`, `private`, `link-local`.
    fn from_str(s: &str) -> Result<AddressClass, String> {
        match s.trim() {
            "loopback" => Ok(AddressClass::Loopback),
            "private" => Ok(AddressClass::Private),
            "link-local" => Ok(AddressClass::LinkLocal),
            other => Err(format!(
                "{other:?} is not an address class that can be allowed (loopback, private, link-local; \
                 cloud metadata and reserved addresses are never allowed)"
            )),
        }
    }
}

const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The class of `ip`. IPv6 addresses that carry an IPv4 address (mapped, NAT64, 6to4) are
/// classified by it.
pub fn classify(ip: IpAddr) -> AddressClass {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = v6.segments();
    // 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) reach the IPv4 address inside.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return classify_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    if v6 == METADATA_V6 {
        AddressClass::Metadata
    } else if v6.is_loopback() {
        AddressClass::Loopback
    } else if (s[0] & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if v6.is_unspecified() || v6.is_multicast() || (s[0] == 0x2001 && s[1] == 0x0db8) {
        AddressClass::Reserved
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        // The deprecated IPv4-compatible form ::a.b.c.d.
        classify_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else {
        AddressClass::Public
    }
}

/// Where a run may connect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// `false`: anywhere (a host's own configuration: the CLI, service mode). `true`: public
    /// addresses, and the classes in `allow`.
    pub restricted: bool,
    pub allow: Vec<AddressClass>,
}

impl AddressPolicy {
    /// Anywhere the origin allowlist lets the run go.
    pub fn any() -> AddressPolicy {
        AddressPolicy::default()
    }

    /// Public addresses, and the classes given (metadata and reserved ones never).
    pub fn public_and(allow: &[AddressClass]) -> AddressPolicy {
        AddressPolicy {
            restricted: true,
            allow: allow.to_vec(),
        }
    }

    /// `Err` with the address's class when the run may not connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        if !self.restricted {
            return Ok(());
        }
        match classify(ip) {
            AddressClass::Public => Ok(()),
            class @ (AddressClass::Metadata | AddressClass::Reserved) => Err(class),
            class if self.allow.contains(&class) => Ok(()),
            class => Err(class),
        }
    }

    /// Checks a host that is an IP literal (`127.0.0.1`, `[::1]`); names are checked when
    /// they are resolved.
    pub fn check_literal(&self, host: &str) -> Result<(), (IpAddr, AddressClass)> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check(ip).map_err(|class| (ip, class)),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn addresses_are_classified() {
        for (ip, want) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.9.9.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("2002:7f00:1::", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("fd12::1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("100.100.100.200", AddressClass::Metadata),
            ("0.0.0.0", AddressClass::Reserved),
            ("::", AddressClass::Reserved),
            ("224.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("52.94.1.1", AddressClass::Public),
            ("2600:1f18::1", AddressClass::Public),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn a_restricted_policy_allows_public_and_what_the_operator_names() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let strict = AddressPolicy::public_and(&[]);
        assert!(strict.check(ip("52.94.1.1")).is_ok());
        assert_eq!(strict.check(ip("127.0.0.1")), Err(AddressClass::Loopback));
        let local = AddressPolicy::public_and(&[AddressClass::Loopback, AddressClass::LinkLocal]);
        assert!(local.check(ip("127.0.0.1")).is_ok());
        assert!(local.check(ip("10.0.0.1")).is_err());
        assert_eq!(
            local.check(ip("169.254.169.254")),
            Err(AddressClass::Metadata),
            "metadata is never allowed"
        );
        assert!(AddressPolicy::any().check(ip("169.254.169.254")).is_ok());
        assert!(strict.check_literal("[::1]").is_err());
        assert!(strict.check_literal("api.segmentapis.com").is_ok());
        assert!("metadata".parse::<AddressClass>().is_err());
        assert_eq!("private".parse(), Ok(AddressClass::Private));
    }
}
