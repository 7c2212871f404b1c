//! onair pusher (in progress).
