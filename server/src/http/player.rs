//! The browser player at `/live`: static files built from `player-web/` into a folder,
//! served by path. It never serves anything outside that folder.

use std::path::PathBuf;

use hyper::{Response, StatusCode};

use super::body::ResponseBody;

pub struct PlayerFiles {
    root: PathBuf,
}

impl PlayerFiles {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// A response when `path` belongs to the player (`/live`, `/live/`, `/player/…`).
    pub fn respond(&self, path: &str) -> Option<Response<ResponseBody>> {
        if path != "/live" && path != "/live/" && !path.starts_with("/player/") {
            return None;
        }
        let mut r = Response::new(ResponseBody::full(format!(
            "The player is not built yet (looked in {}).\n",
            self.root.display()
        )));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Some(r)
    }
}
