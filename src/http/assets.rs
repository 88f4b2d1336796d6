//! Templates and static files, embedded in the executable, so the release
//! binary serves its pages from any working directory. A configured
//! `template_dir` or `static_dir` overrides them file by file (a file that
//! is not there comes from the embedded set). Debug builds embed them too
//! (so tests run what users run); `cargo run` rebuilds after an edit.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rocket::fairing::AdHoc;
use rocket::http::ContentType;
use rocket::{get, routes, State};
use serde::Serialize;

#[derive(rust_embed::Embed)]
#[folder = "templates/"]
struct EmbeddedTemplates;

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct EmbeddedStatic;

/// The pages and files gatehouse serves; managed as state.
pub struct Assets {
    templates: minijinja::Environment<'static>,
    static_dir: Option<PathBuf>,
}

/// A configured directory that is not one: a start-up error.
fn check_dir(key: &str, dir: &Option<PathBuf>) -> Result<(), String> {
    match dir {
        Some(d) if !d.is_dir() => Err(format!(
            "{key} {:?} is not a directory (leave it unset to use the built-in files)",
            d.display().to_string()
        )),
        _ => Ok(()),
    }
}

/// A file's bytes: from `dir` when it holds it, else embedded.
fn read(
    dir: Option<&Path>,
    name: &str,
    embedded: fn(&str) -> Option<Cow<'static, [u8]>>,
) -> Option<Cow<'static, [u8]>> {
    if let Some(dir) = dir {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            return Some(Cow::Owned(bytes));
        }
    }
    embedded(name)
}

impl Assets {
    /// The embedded files, overridden by the given directories.
    pub fn new(template_dir: Option<PathBuf>, static_dir: Option<PathBuf>) -> Result<Self, String> {
        check_dir("template_dir", &template_dir)?;
        check_dir("static_dir", &static_dir)?;
        let mut templates = minijinja::Environment::new();
        // Every template is HTML: escape everything, whatever its name.
        templates.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        // Unix seconds as "2026-12-01 20:35 UTC".
        templates.add_filter("utc", crate::core::utc_minutes);
        templates.set_loader(move |name| {
            let file = format!("{name}.html.j2");
            let bytes = read(template_dir.as_deref(), &file, |f| {
                EmbeddedTemplates::get(f).map(|e| e.data)
            });
            match bytes {
                Some(b) => String::from_utf8(b.into_owned()).map(Some).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                }),
                None => Ok(None),
            }
        });
        Ok(Assets {
            templates,
            static_dir,
        })
    }

    /// Renders template `name` (e.g. `login` for `login.html.j2`).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        self.templates.get_template(name)?.render(ctx)
    }

    /// A static file and its content type.
    pub fn file(&self, path: &str) -> Option<(ContentType, Cow<'static, [u8]>)> {
        let bytes = read(self.static_dir.as_deref(), path, |f| {
            EmbeddedStatic::get(f).map(|e| e.data)
        })?;
        let ext = Path::new(path).extension()?.to_str()?;
        let ct = ContentType::from_extension(ext).unwrap_or(ContentType::Binary);
        Some((ct, bytes))
    }
}

impl Assets {
    /// The assets `template_dir` and `static_dir` of `figment` configure.
    pub fn from_figment(figment: &rocket::figment::Figment) -> Result<Self, String> {
        let dir = |key: &str| figment.extract_inner::<PathBuf>(key).ok();
        Assets::new(dir("template_dir"), dir("static_dir"))
    }
}

/// Builds [`Assets`] from `template_dir` and `static_dir` at ignite; a
/// configured directory that is not one fails the start with its reason.
pub fn fairing() -> AdHoc {
    AdHoc::try_on_ignite("assets", |rocket| async move {
        match Assets::from_figment(rocket.figment()) {
            Ok(assets) => Ok(rocket.manage(assets)),
            Err(reason) => {
                tracing::error!("gatehouse cannot start: {reason}");
                Err(rocket)
            }
        }
    })
}

/// `/static/<path>`: Rocket's `PathBuf` guard refuses `..` and dotfiles.
#[get("/static/<path..>")]
fn static_file(path: PathBuf, assets: &State<Assets>) -> Option<(ContentType, Cow<'static, [u8]>)> {
    assets.file(path.to_str()?)
}

/// The routes of this module.
pub fn routes() -> Vec<rocket::Route> {
    routes![static_file]
}

#[cfg(test)]
mod tests {
    use super::Assets;

    #[test]
    fn embedded_pages_render_escaped_and_a_directory_overrides_them() {
        let assets = Assets::new(None, None).unwrap();
        let html = assets
            .render(
                "error",
                serde_json::json!({"status": 400, "reason": "Bad Request", "message": "<script>x</script>"}),
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;x"), "{html}");
        assert!(!html.contains("<script>x"));
        assert!(assets.file("style.css").is_some());
        assert!(assets.file("nope.css").is_none());

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("style.css"), "body{}").unwrap();
        let custom = Assets::new(None, Some(dir.path().into())).unwrap();
        assert_eq!(&*custom.file("style.css").unwrap().1, b"body{}");
        assert!(custom.file("demo.js").is_some(), "the rest stays built in");
        assert!(Assets::new(Some("/no/such/dir".into()), None).is_err());
    }
}
