//! The dashboard, embedded: the files `npm run build` produced from `/site` (see build.rs),
//! looked up by URL path. The server decides which paths are dashboard pages; this crate only
//! knows the files, their types, and how long browsers may cache them.

/// One built file.
#[derive(Debug)]
pub struct File {
    /// Its URL path, e.g. `/assets/index-3hRDv6ZQ.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

impl File {
    /// `Cache-Control` for it: hashed assets never change under their name; the page that
    /// names them must be revalidated so a new build is picked up at once.
    pub fn cache_control(&self) -> &'static str {
        if self.path.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// The file at `path`, if the build has one.
pub fn file(path: &str) -> Option<&'static File> {
    FILES.iter().find(|file| file.path == path)
}

/// The page every dashboard route loads; the script in it renders the route.
pub fn index() -> &'static File {
    file("/index.html").expect("the dashboard build has an index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_embedded_with_its_assets() {
        let page = std::str::from_utf8(index().bytes).unwrap();
        assert!(page.contains("<div id=\"root\">"), "{page}");
        assert_eq!(index().content_type, "text/html; charset=utf-8");
        assert_eq!(index().cache_control(), "no-cache");
        // Every script and stylesheet the page names is embedded, immutable under its hash.
        let named: Vec<&str> = page
            .split('"')
            .filter(|part| part.starts_with("/assets/"))
            .collect();
        assert!(named.len() >= 2, "{page}");
        for path in named {
            let asset = file(path).unwrap_or_else(|| panic!("{path} is not embedded"));
            assert!(!asset.bytes.is_empty());
            assert!(asset.cache_control().contains("immutable"));
        }
        assert!(file("/nope.js").is_none());
    }
}
