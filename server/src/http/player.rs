//! The browser player: static files that `player-web/` builds (`npm run build`) into
//! `http.player_dir`, served at `/live` (the page, `index.html`) and `/player/…` (its
//! assets). It never serves anything outside that folder, and a missing folder never stops
//! the server: `/live` then answers 503 with the command that builds it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::body::ResponseBody;

/// The command that builds the player, as said in logs and in the 503 page.
pub const BUILD_COMMAND: &str = "cd player-web && npm ci && npm run build";

/// What a request path asks of the player.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// The page itself (`/live`, `/live/`).
    Page,
    /// A file under the player folder, as a relative path of checked segments.
    Asset(PathBuf),
    /// A `/player/…` path that can never name a file of ours (`..`, `%`, `\`, empty segments…).
    Refused,
}

/// Maps a request path to what it asks of the player; `None` when the path is not the
/// player's. Pure: no file system access. Every segment of an asset path must be a plain
/// file name of `[A-Za-z0-9._-]` that is not `.` or `..`, so neither `../`, an encoded
/// `%2e%2e`, a backslash nor an absolute path can leave the folder.
pub fn target(path: &str) -> Option<Target> {
    if path == "/live" || path == "/live/" {
        return Some(Target::Page);
    }
    let rest = path.strip_prefix("/player/")?;
    let mut rel = PathBuf::new();
    for seg in rest.split('/') {
        let plain = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain {
            return Some(Target::Refused);
        }
        rel.push(seg);
    }
    Some(Target::Asset(rel))
}

/// Content type by file extension, for what a Vite build emits.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Vite names the files under `assets/` by their content hash, so they never change and may
/// be cached for good; the page and anything else must be revalidated.
pub fn cache_control(rel: &Path) -> &'static str {
    if rel.starts_with("assets") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    body: Bytes,
}

/// The player folder, with the files read so far kept in memory (re-read when their size or
/// modification time changes, so a rebuild shows without a restart).
pub struct PlayerFiles {
    root: PathBuf,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

impl PlayerFiles {
    /// Says in the log whether the player is there; a missing one is a warning with the
    /// command that builds it, not an error: the server is useful without it.
    pub fn new(root: PathBuf) -> Self {
        let files = Self {
            root,
            cache: Mutex::new(HashMap::new()),
        };
        if files.is_built() {
            tracing::info!(dir = %files.root.display(), "browser player at /live");
        } else {
            tracing::warn!(
                dir = %files.root.display(),
                "browser player not built, /live answers 503 until it is; build it with: {BUILD_COMMAND}"
            );
        }
        files
    }

    pub fn is_built(&self) -> bool {
        self.root.join("index.html").is_file()
    }

    /// A response when `path` belongs to the player (`/live`, `/live/`, `/player/…`).
    pub fn respond(&self, path: &str) -> Option<Response<ResponseBody>> {
        let rel = match target(path)? {
            Target::Page => PathBuf::from("index.html"),
            Target::Asset(rel) => rel,
            Target::Refused => return Some(not_found()),
        };
        if !self.is_built() {
            return Some(self.not_built());
        }
        let Some(body) = self.read(&rel) else {
            return Some(not_found());
        };
        let mut r = Response::new(ResponseBody::full(body));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(&rel)));
        h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control(&rel)));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        Some(r)
    }

    /// The bytes of `rel`, if it is a regular file inside the folder. Symbolic links are
    /// resolved and must stay inside the folder too.
    fn read(&self, rel: &Path) -> Option<Bytes> {
        let root = self.root.canonicalize().ok()?;
        let full = root.join(rel).canonicalize().ok()?;
        if !full.starts_with(&root) {
            return None;
        }
        let meta = std::fs::metadata(&full).ok()?;
        if !meta.is_file() {
            return None;
        }
        let modified = meta.modified().ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&full) {
            if c.len == meta.len() && c.modified == modified {
                return Some(c.body.clone());
            }
        }
        let body = Bytes::from(std::fs::read(&full).ok()?);
        cache.insert(
            full,
            Cached {
                modified,
                len: meta.len(),
                body: body.clone(),
            },
        );
        Some(body)
    }

    fn not_built(&self) -> Response<ResponseBody> {
        let page = format!(
            "<!doctype html>\n<meta charset=\"utf-8\">\n<title>onair: player not built</title>\n\
             <h1>The browser player is not built</h1>\n\
             <p>Build it from the repository root, then reload this page (no restart needed):</p>\n\
             <pre>{BUILD_COMMAND}</pre>\n\
             <p>The server looks for it in <code>{}</code> (<code>http.player_dir</code>).\n\
             Streams play meanwhile at <code>/APP/STREAM.flv</code>; <code>/api/streams</code> lists them.</p>\n",
            html_escape(&self.root.display().to_string())
        );
        let mut r = Response::new(ResponseBody::full(page));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

fn not_found() -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::full("not found\n"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(target("/live"), Some(Target::Page));
        assert_eq!(target("/live/"), Some(Target::Page));
        assert_eq!(target("/live/t.flv"), None);
        assert_eq!(target("/api/streams"), None);
        assert_eq!(target("/player"), None);
        assert_eq!(
            target("/player/assets/index-Ab_9.js"),
            Some(Target::Asset(PathBuf::from("assets/index-Ab_9.js")))
        );
        for bad in [
            "/player/",
            "/player/../Cargo.toml",
            "/player/assets/../../x",
            "/player/./index.html",
            "/player//etc/passwd",
            "/player/%2e%2e/x",
            "/player/..%2fx",
            "/player/a\\..\\b",
            "/player/assets/",
            "/player/a b",
        ] {
            assert_eq!(target(bad), Some(Target::Refused), "{bad}");
        }
    }

    #[test]
    fn types_and_caching() {
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("assets/a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("assets/a.css")),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
        assert_eq!(
            cache_control(Path::new("assets/a-123.js")),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control(Path::new("index.html")), "no-cache");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("onair-player-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn status(r: &Option<Response<ResponseBody>>) -> u16 {
        r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)
    }

    #[test]
    fn serves_files_and_nothing_outside() {
        let base = temp_dir("serve");
        let root = base.join("dist");
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(root.join("index.html"), "<p>page</p>").unwrap();
        std::fs::write(root.join("assets/app-1.js"), "x()").unwrap();
        std::fs::write(base.join("secret.txt"), "no").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
        let files = PlayerFiles::new(root.clone());

        let page = files.respond("/live").unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[CACHE_CONTROL], "no-cache");
        let js = files.respond("/player/assets/app-1.js").unwrap();
        assert_eq!(js.status(), 200);
        assert_eq!(
            js.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(files.respond("/other").is_none());
        assert_eq!(status(&files.respond("/player/../secret.txt")), 404);
        assert_eq!(status(&files.respond("/player/nope.js")), 404);
        assert_eq!(status(&files.respond("/player/assets")), 404, "a folder");
        #[cfg(unix)]
        assert_eq!(
            status(&files.respond("/player/link.txt")),
            404,
            "a link out of the folder"
        );

        // A rebuild shows without a restart.
        std::fs::write(root.join("assets/app-1.js"), "y(); // longer").unwrap();
        let ResponseBody::Full(Some(b)) = files
            .respond("/player/assets/app-1.js")
            .unwrap()
            .into_body()
        else {
            panic!("full body expected");
        };
        assert_eq!(&b[..], b"y(); // longer");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn missing_folder_says_how_to_build() {
        let files = PlayerFiles::new(temp_dir("missing").join("dist"));
        assert!(!files.is_built());
        let r = files.respond("/live").unwrap();
        assert_eq!(r.status(), 503);
        let ResponseBody::Full(Some(b)) = r.into_body() else {
            panic!("full body expected");
        };
        assert!(String::from_utf8_lossy(&b).contains(BUILD_COMMAND));
        assert_eq!(status(&files.respond("/player/assets/a.js")), 503);
        assert_eq!(status(&files.respond("/player/../x")), 404);
    }
}
