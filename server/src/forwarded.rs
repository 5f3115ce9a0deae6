//! Requests relayed by a proxy the operator trusts (`--trusted-proxy`): the client's
//! address comes from `X-Forwarded-For` and whether it used TLS from
//! `X-Forwarded-Proto`. From any other peer both headers are ignored, so a client
//! cannot claim another address or a secure transport.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// At most this many `X-Forwarded-For` hops are read (from the nearest one back).
const MAX_FORWARDED_HOPS: usize = 32;

/// The networks whose connections may speak for their clients.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// Who a request is from, as policies and the journal see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOrigin {
    pub ip: IpAddr,
    pub secure_transport: bool,
}

impl TrustedProxies {
    /// Networks (`10.0.0.0/8`) or single addresses (`192.0.2.7`).
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        let networks = list
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted proxy {text:?} is not an IP address or network (10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { networks })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: while the hop is a trusted proxy, step back one
    /// `X-Forwarded-For` entry; the first untrusted address (or the last one listed) is
    /// the client. The transport is secure if the connection is TLS or the nearest
    /// trusted proxy says, in the last `X-Forwarded-Proto` value, that it received https.
    pub fn client_of(&self, peer: IpAddr, tls: bool, headers: &http::HeaderMap) -> ClientOrigin {
        if !self.trusts(peer) {
            return ClientOrigin { ip: peer, secure_transport: tls };
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut ip = peer;
        for hop in hops.iter().rev().take(MAX_FORWARDED_HOPS) {
            let Some(address) = parse_hop(hop) else { break };
            ip = address;
            if !self.trusts(address) {
                break;
            }
        }
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(str::trim);
        let secure_transport = tls || proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
        ClientOrigin { ip, secure_transport }
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`[::1]:80`, `192.0.2.1:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_speak_for_their_clients() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]);
        let cases = [
            // (peer, tls, headers, expected client, expected secure)
            ("198.51.100.1", false, &forwarded, "198.51.100.1", false), // untrusted peer: headers ignored
            ("10.1.2.3", false, &forwarded, "203.0.113.9", true),
            ("192.0.2.7", false, &forwarded, "203.0.113.9", true),
            ("10.1.2.3", true, &headers(&[]), "10.1.2.3", true), // no headers: the proxy itself
            ("10.1.2.3", false, &headers(&[("x-forwarded-proto", "http")]), "10.1.2.3", false),
        ];
        for (peer, tls, headers, client, secure) in cases {
            let got = proxies.client_of(ip(peer), tls, headers);
            assert_eq!(got, ClientOrigin { ip: ip(client), secure_transport: secure }, "peer {peer}, {headers:?}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // A client-made entry (1.1.1.1) left of the real client is never reached.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9"), ("x-forwarded-for", "10.0.0.5")]);
        assert_eq!(proxies.client_of(ip("10.0.0.1"), false, &chain).ip, ip("203.0.113.9"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]);
        assert_eq!(proxies.client_of(ip("10.0.0.1"), false, &all_trusted).ip, ip("10.0.0.9"));
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip")]);
        assert_eq!(
            proxies.client_of(ip("10.0.0.1"), false, &garbage).ip,
            ip("10.0.0.1"),
            "unparsable: stop at the proxy"
        );
        let ports = headers(&[("x-forwarded-for", "[2001:db8::1]:4711")]);
        assert_eq!(proxies.client_of(ip("10.0.0.1"), false, &ports).ip, ip("2001:db8::1"));
        // The nearest proxy's word on the scheme counts (the last value).
        let proto = headers(&[("x-forwarded-proto", "https, http")]);
        assert!(!proxies.client_of(ip("10.0.0.1"), false, &proto).secure_transport);
    }

    #[test]
    fn at_most_max_forwarded_hops_are_read() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // The client, then more trusted hops than are read: the walk stops at the last one read.
        let hops: Vec<String> =
            (0..MAX_FORWARDED_HOPS + 8).map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1)).collect();
        let value = format!("203.0.113.9, {}", hops.join(", "));
        let got = proxies.client_of(ip("10.0.0.1"), false, &headers(&[("x-forwarded-for", &value)]));
        assert_eq!(got.ip, parse_hop(&hops[hops.len() - MAX_FORWARDED_HOPS]).unwrap(), "the oldest hop read");
        let within = format!("203.0.113.9, {}", hops[..MAX_FORWARDED_HOPS - 1].join(", "));
        let got = proxies.client_of(ip("10.0.0.1"), false, &headers(&[("x-forwarded-for", &within)]));
        assert_eq!(got.ip, ip("203.0.113.9"), "within the bound the client is reached");
    }

    #[test]
    fn bad_networks_are_refused() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example.com".into()]).is_err());
        assert!(TrustedProxies::parse(&[]).unwrap().networks.is_empty());
    }
}
