//! AMF0 as the server decodes it from peers: the iterative nesting check, rml_amf0's
//! decoder behind it, `onMetaData` parsing, and the command check that decides what reaches
//! rml_rtmp's session. The first byte picks the nesting limit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair_server::rtmp::messages::{check_command, CommandCheck};
use onair_shared::metadata::{check_amf0, decode_amf0, parse_script, Amf0Value};

fuzz_target!(|data: &[u8]| {
    let Some((&depth, amf)) = data.split_first() else {
        return;
    };
    let depth = depth as usize % 20;
    let payload = Bytes::copy_from_slice(amf);
    let checked = check_amf0(amf, depth).is_ok();
    if let Ok(values) = decode_amf0(amf, depth) {
        assert!(checked);
        let bytes = rml_amf0::serialize(&values).expect("decoded values serialize");
        let again = decode_amf0(&bytes, depth).expect("re-encoded AMF0 decodes");
        assert_eq!(again.len(), values.len());
    }
    if let Ok(script) = parse_script(&payload, depth) {
        assert!(payload.ends_with(&script.body));
    }
    if let Ok(CommandCheck::Forward(bytes)) = check_command(&payload, depth) {
        let values = decode_amf0(&bytes, depth).expect("forwarded commands decode");
        assert!(matches!(values.first(), Some(Amf0Value::Utf8String(_))));
    }
});
