//! Every end-to-end test, in one binary: each file under tests/ is a module of it. One
//! binary instead of one per file links onair and its codecs once rather than forty times,
//! which was a large part of CI's build. Run one file's tests with
//! `cargo test --test e2e FILE::` (e.g. `cargo test --test e2e fanout::`).

mod common;
mod pusher_util;

mod admin;
mod admin_fuzz;
mod bad_input;
mod bans;
mod cluster;
mod docker;
mod enhanced_rtmp;
mod fanout;
mod faults;
mod ffmpeg_interop;
mod hardening;
mod hls;
mod hls_cache;
mod hls_fmp4;
mod hls_timing;
mod interop_players;
mod lifecycle;
mod player_http;
mod public_api;
mod pull;
mod pusher_aec;
mod pusher_capture;
mod pusher_codecs;
mod pusher_cohost;
mod pusher_file;
mod pusher_network;
mod pusher_passthrough;
mod pusher_rtmp;
mod pusher_vad;
mod pusher_vp9_av1;
mod qoe;
mod record;
mod reload;
mod rtmpt;
mod slow_viewer;
mod soak;
mod timestamps;
mod tls;
mod webrtc;
