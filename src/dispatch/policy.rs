//! Outbound network policy: destinations are checked against a deny list (cloud
//! metadata and link-local by default) and an optional allow list. Host names are checked
//! inside the HTTP client's resolver, on the addresses it will actually connect to, so a
//! DNS answer cannot slip past a check made earlier; IP literals are checked before sending.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Blocked by default: link-local (including 169.254.169.254, the cloud metadata service)
/// and AWS's IPv6 metadata address.
pub const DEFAULT_DENY: [&str; 3] = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"];

/// Blocked whatever the allow list says: the unspecified addresses (`0.0.0.0/8`, `::`),
/// which the kernel routes to the local host.
pub const ALWAYS_DENY: [&str; 2] = ["0.0.0.0/8", "::/128"];

/// Where switchboard may send requests.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    always_deny: Vec<IpNet>,
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy::new(&[], &[])
    }
}

/// Marks a resolver error as a policy decision, so that it is logged as `blocked`.
pub const BLOCKED_MARK: &str = "blocked by the outbound network policy";

impl NetworkPolicy {
    /// The default deny list plus `deny`, and `allow` (empty: everything not denied).
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> NetworkPolicy {
        let mut all_deny: Vec<IpNet> = DEFAULT_DENY
            .iter()
            .map(|c| c.parse().expect("the default deny list is valid"))
            .collect();
        all_deny.extend_from_slice(deny);
        NetworkPolicy {
            always_deny: ALWAYS_DENY
                .iter()
                .map(|c| c.parse().expect("the fixed deny list is valid"))
                .collect(),
            deny: all_deny,
            allow: allow.to_vec(),
        }
    }

    /// Whether an address may be connected to. An allow entry at least as specific as a
    /// deny entry wins over it (so `--allow-outbound 169.254.170.2/32` works); with an
    /// allow list, nothing outside it is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        // ::ffff:169.254.169.254 is 169.254.169.254: judge every address in its plain form.
        let ip = ip.to_canonical();
        if self.always_deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        let allowed_by = self
            .allow
            .iter()
            .filter(|n| n.contains(&ip))
            .map(IpNet::prefix_len)
            .max();
        if !self.allow.is_empty() && allowed_by.is_none() {
            return false;
        }
        let denied_by = self
            .deny
            .iter()
            .filter(|n| n.contains(&ip))
            .map(IpNet::prefix_len)
            .max();
        match (denied_by, allowed_by) {
            (None, _) => true,
            (Some(d), Some(a)) => a >= d,
            (Some(_), None) => false,
        }
    }

    /// Checks a URL whose host is an IP literal (names are checked by the resolver).
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.allows(ip) {
            Ok(())
        } else {
            Err(format!(
                "{ip} is {BLOCKED_MARK} (see --allow-outbound / --deny-outbound)"
            ))
        }
    }
}

/// The HTTP client's resolver: the system's, minus the addresses the policy denies.
pub struct PolicyResolver(pub Arc<NetworkPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let addrs: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                let message = format!(
                    "{host} resolves to {}, which is {BLOCKED_MARK}",
                    addrs.join(", ")
                );
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_are_denied_by_default() {
        let p = NetworkPolicy::default();
        assert!(!p.allows(ip("169.254.169.254")));
        for unspecified in ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"] {
            assert!(!p.allows(ip(unspecified)), "{unspecified}");
            let everything = NetworkPolicy::new(
                &["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
                &[],
            );
            assert!(!everything.allows(ip(unspecified)), "{unspecified}");
        }
        assert!(!p.allows(ip("fe80::1")));
        assert!(!p.allows(ip("fd00:ec2::254")));
        assert!(p.allows(ip("127.0.0.1")));
        assert!(p.allows(ip("93.184.216.34")));
    }

    #[test]
    fn allow_and_deny_lists() {
        let specific = NetworkPolicy::new(&["169.254.170.2/32".parse().unwrap()], &[]);
        assert!(specific.allows(ip("169.254.170.2")));
        assert!(
            !specific.allows(ip("10.0.0.1")),
            "an allow list allows nothing else"
        );
        let broad = NetworkPolicy::new(
            &["0.0.0.0/0".parse().unwrap()],
            &["10.0.0.0/8".parse().unwrap()],
        );
        assert!(broad.allows(ip("8.8.8.8")));
        assert!(!broad.allows(ip("10.1.2.3")));
        assert!(
            !broad.allows(ip("169.254.169.254")),
            "a broad allow does not reopen metadata"
        );
    }

    #[tokio::test]
    async fn ip_literals_are_checked_before_sending() {
        let p = NetworkPolicy::default();
        assert!(
            p.check_url("http://169.254.169.254/latest/meta-data")
                .await
                .unwrap_err()
                .contains(BLOCKED_MARK)
        );
        assert!(p.check_url("http://[fe80::1]:8080/").await.is_err());
        assert!(
            p.check_url("http://[::ffff:169.254.169.254]/")
                .await
                .is_err(),
            "IPv4-mapped IPv6"
        );
        assert!(
            !NetworkPolicy::new(&[], &["127.0.0.0/8".parse().unwrap()])
                .allows(ip("::ffff:127.0.0.1"))
        );
        assert!(p.check_url("http://127.0.0.1:9000/").await.is_ok());
        assert!(p.check_url("https://api.hubapi.com/").await.is_ok());
    }
}
