//! Who is on the other end of a request: the client's address (from the socket, or from
//! `X-Forwarded-For` only when the socket peer is the configured reverse proxy) and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use ctguard_protocol::address::canonical_address;

/// The address a request came from, normalised (`::ffff:a.b.c.d` is `a.b.c.d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub user_agent: String,
}

/// The reverse proxy whose `X-Forwarded-For` is believed; nobody else's is.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrustedProxy(pub Option<IpAddr>);

const MAX_USER_AGENT: usize = 256;

impl ClientInfo {
    pub fn from_parts(peer: IpAddr, headers: &HeaderMap, proxy: TrustedProxy) -> Self {
        // One address, one form, as the helper's guardrails see it (protocol/src/address.rs).
        let peer = canonical_address(peer);
        let addr = match proxy.0 {
            Some(proxy) if canonical_address(proxy) == peer => {
                forwarded_for(headers).unwrap_or(peer)
            }
            _ => peer,
        };
        let user_agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(MAX_USER_AGENT)
            .collect();
        Self { addr, user_agent }
    }
}

/// The address the trusted proxy saw: the last entry of the last `X-Forwarded-For` header (the
/// ones before it were written by the client and prove nothing).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(canonical_address)
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(info) = parts.extensions.get::<ClientInfo>() {
            return Ok(info.clone());
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let proxy = parts
            .extensions
            .get::<TrustedProxy>()
            .copied()
            .unwrap_or_default();
        Ok(Self::from_parts(peer, &parts.headers, proxy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    #[test]
    fn mapped_ipv4_is_normalised() {
        let info = ClientInfo::from_parts(
            "::ffff:192.0.2.7".parse().expect("ip"),
            &HeaderMap::new(),
            TrustedProxy(None),
        );
        assert_eq!(info.addr, "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_the_trusted_proxy() {
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]);
        let proxy = TrustedProxy(Some("127.0.0.1".parse().expect("ip")));
        let via_proxy = ClientInfo::from_parts("127.0.0.1".parse().expect("ip"), &forwarded, proxy);
        assert_eq!(
            via_proxy.addr,
            "198.51.100.4".parse::<IpAddr>().expect("ip")
        );
        let direct = ClientInfo::from_parts("192.0.2.1".parse().expect("ip"), &forwarded, proxy);
        assert_eq!(direct.addr, "192.0.2.1".parse::<IpAddr>().expect("ip"));
        let untrusted = ClientInfo::from_parts(
            "127.0.0.1".parse().expect("ip"),
            &forwarded,
            TrustedProxy(None),
        );
        assert_eq!(untrusted.addr, "127.0.0.1".parse::<IpAddr>().expect("ip"));
    }
}
