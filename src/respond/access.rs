//! Who may talk to us: CIDR allowlists, matched after canonicalising IPv4-mapped IPv6
//! peers (`::ffff:10.0.0.1` is `10.0.0.1`), so a dual-stack socket cannot bypass an
//! IPv4 rule.

use std::net::IpAddr;

use ipnet::IpNet;

pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

pub fn allowed(list: &[IpNet], peer: IpAddr) -> bool {
    let peer = canonical(peer);
    list.iter().any(|n| n.contains(&peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn mapped_peers_match_ipv4_rules() {
        let l = nets(&["10.0.0.0/8"]);
        assert!(allowed(&l, "10.1.2.3".parse().unwrap()));
        assert!(allowed(&l, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allowed(&l, "11.0.0.1".parse().unwrap()));
        assert!(!allowed(&l, "::ffff:11.0.0.1".parse().unwrap()));
        assert!(!allowed(&l, "::1".parse().unwrap()));
    }

    #[test]
    fn everyone_and_nobody() {
        let all = nets(&["0.0.0.0/0", "::/0"]);
        assert!(allowed(&all, "192.0.2.1".parse().unwrap()));
        assert!(allowed(&all, "2001:db8::1".parse().unwrap()));
        assert!(!allowed(&[], "127.0.0.1".parse().unwrap()));
    }
}
