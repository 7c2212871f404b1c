//! The hop list a pull carries upstream (`?onair_via=a.b.c` on the play name): the servers
//! it passed, so a loop (A pulls from B pulls from A) or a runaway tree is refused by a hop
//! count instead of spinning. Pure parsing; no socket, no clock.

/// The query parameter that carries the hop list.
pub const PARAM: &str = "onair_via";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HopError {
    #[error("pull loop: this server ({0}) is already in the pull's hop list")]
    Loop(String),
    #[error("pull passed {0} servers, more than cluster.max_hops ({1})")]
    TooMany(usize, usize),
}

/// The servers a play request passed, from its query (`key=…&onair_via=a.b`).
pub fn parse(query: &str) -> Vec<String> {
    crate::auth::query_param(query, PARAM)
        .map(|v| {
            v.split('.')
                .filter(|s| !s.is_empty())
                .take(64)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The hop list to send upstream when `node` pulls for a request that came via `via`.
pub fn extend(via: &[String], node: &str, max_hops: usize) -> Result<Vec<String>, HopError> {
    if via.iter().any(|n| n == node) {
        return Err(HopError::Loop(node.to_string()));
    }
    if via.len() >= max_hops {
        return Err(HopError::TooMany(via.len(), max_hops));
    }
    let mut v = via.to_vec();
    v.push(node.to_string());
    Ok(v)
}

/// A node id usable in the list: letters and digits only (the list's separator is '.').
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The play name sent upstream: `name?onair_via=…[&token=…]`.
pub fn play_name(name: &str, via: &[String], credential: &str) -> String {
    let mut s = format!("{name}?{PARAM}={}", via.join("."));
    if !credential.is_empty() {
        s.push_str("&token=");
        s.push_str(credential);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_extends() {
        assert!(parse("").is_empty());
        assert_eq!(parse("token=x&onair_via=a1.b2"), vec!["a1", "b2"]);
        let v = extend(&parse("onair_via=a1"), "b2", 8).unwrap();
        assert_eq!(v, vec!["a1", "b2"]);
        assert_eq!(play_name("cam", &v, ""), "cam?onair_via=a1.b2");
        assert_eq!(play_name("cam", &v, "s3"), "cam?onair_via=a1.b2&token=s3");
    }

    #[test]
    fn refuses_loops_and_long_chains() {
        let via = parse("onair_via=a1.b2");
        assert_eq!(extend(&via, "a1", 8), Err(HopError::Loop("a1".into())));
        assert_eq!(extend(&via, "c3", 2), Err(HopError::TooMany(2, 2)));
        assert!(valid_node_id("ab12") && !valid_node_id("a.b") && !valid_node_id(""));
    }
}
