//! What the UDP reader reads out of a datagram before any session sees it: its kind
//! (RFC 7983: STUN, DTLS, RTP/RTCP) and, for STUN, the server's ICE ufrag from the
//! USERNAME attribute, which says which viewer it is for. Sans-IO; never trusts a length.

/// The protocol of a datagram on the muxed port, from its first byte (RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Other,
}

pub fn kind(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("STUN message shorter than its 20-byte header ({0} bytes)")]
    Short(usize),
    #[error("STUN magic cookie missing")]
    NoCookie,
    #[error("STUN length {declared} does not match the {actual} bytes after the header")]
    Length { declared: usize, actual: usize },
    #[error("STUN attribute at byte {0} runs past the message")]
    Attribute(usize),
    #[error("STUN USERNAME is not 'server:client' text")]
    Username,
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;

/// The local (server) ufrag of a STUN message: the part of USERNAME before ':'.
/// `Ok(None)` for a well-formed message without USERNAME (a response or an indication).
pub fn stun_server_ufrag(msg: &[u8]) -> Result<Option<&str>, StunError> {
    if msg.len() < 20 {
        return Err(StunError::Short(msg.len()));
    }
    if msg[4..8] != MAGIC_COOKIE {
        return Err(StunError::NoCookie);
    }
    let declared = u16::from_be_bytes([msg[2], msg[3]]) as usize;
    let body = &msg[20..];
    if declared != body.len() || !declared.is_multiple_of(4) {
        return Err(StunError::Length {
            declared,
            actual: body.len(),
        });
    }
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let start = at + 4;
        let end = start + len;
        if end > body.len() {
            return Err(StunError::Attribute(20 + at));
        }
        if typ == USERNAME {
            let text = std::str::from_utf8(&body[start..end]).map_err(|_| StunError::Username)?;
            let (server, _client) = text.split_once(':').ok_or(StunError::Username)?;
            if server.is_empty() {
                return Err(StunError::Username);
            }
            return Ok(Some(server));
        }
        // Attributes are padded to 4 bytes.
        at = start + len.div_ceil(4) * 4;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_server_ufrag_after_other_attributes() {
        let m = binding_request(&[(0x0024, &[0, 0, 0, 1]), (USERNAME, b"srvA:cli")]);
        assert_eq!(kind(&m), Kind::Stun);
        assert_eq!(stun_server_ufrag(&m), Ok(Some("srvA")));
    }

    #[test]
    fn a_message_without_username_has_no_ufrag() {
        let m = binding_request(&[(0x0024, &[0, 0, 0, 1])]);
        assert_eq!(stun_server_ufrag(&m), Ok(None));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert_eq!(stun_server_ufrag(&[0, 1, 0]), Err(StunError::Short(3)));
        let mut m = binding_request(&[(USERNAME, b"a:b")]);
        m[4] = 0;
        assert_eq!(stun_server_ufrag(&m), Err(StunError::NoCookie));
        let mut m = binding_request(&[(USERNAME, b"a:b")]);
        m[3] += 4;
        assert!(matches!(
            stun_server_ufrag(&m),
            Err(StunError::Length { .. })
        ));
        // An attribute that claims more bytes than there are.
        let mut m = binding_request(&[(USERNAME, b"a:b")]);
        m[23] = 200;
        assert_eq!(stun_server_ufrag(&m), Err(StunError::Attribute(20)));
        let m = binding_request(&[(USERNAME, b"nocolon")]);
        assert_eq!(stun_server_ufrag(&m), Err(StunError::Username));
        let m = binding_request(&[(USERNAME, &[0xff, b':', b'x'])]);
        assert_eq!(stun_server_ufrag(&m), Err(StunError::Username));
    }

    #[test]
    fn kinds_follow_rfc_7983() {
        assert_eq!(kind(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(kind(&[0x80, 96]), Kind::Rtp);
        assert_eq!(kind(&[200]), Kind::Other);
        assert_eq!(kind(&[]), Kind::Other);
    }
}
