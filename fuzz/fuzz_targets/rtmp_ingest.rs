//! The RTMP ingest path as the server runs it (`onair_server::rtmp::replay`): the same
//! driver and session as a TCP connection (rml_rtmp's handshake, our chunk decoder,
//! command checks and rml_rtmp's session, media parsed at ingest) over an in-memory
//! transport, into a real hub. Input: one mode byte, then what the client sends. The
//! mode's low 7 bits are the socket read size (0: 16 KiB, as the server reads), its high
//! bit selects tight limits so that they are reached with small inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair_server::config::RtmpConfig;
use onair_server::rtmp::replay::ingest_with_reads;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut cfg = RtmpConfig::default();
    if mode & 0x80 != 0 {
        cfg.max_chunk_size = 4096;
        cfg.max_message_size = 8192;
        cfg.max_command_size = 512;
        cfg.max_amf_depth = 3;
        cfg.max_chunk_streams = 4;
    }
    let read_size = match mode & 0x7f {
        0 => 16 * 1024,
        n => n as usize,
    };
    let summary = ingest_with_reads(bytes, &cfg, read_size);
    // The server survives a panic in rml_rtmp (it closes that connection), but input that
    // makes it panic is a bug to find and keep away from it. (libfuzzer-sys's panic hook
    // already aborts at the panic itself, with its stack; this documents the intent.)
    assert!(!summary.caught_panic, "{:?}", summary.closed);
});
