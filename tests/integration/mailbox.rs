//! Reading the mails gatehouse sent: `.eml` files, written by its file
//! transport or by the test SMTP server (tests/smtp/sink.py, aiosmtpd),
//! which this module also starts.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, Process};

/// One mail, decoded enough to read it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: PathBuf,
    pub to: String,
    pub subject: String,
    /// The text/plain part, quoted-printable decoded.
    pub text: String,
    /// The text/html part, decoded.
    pub html: String,
}

impl Mail {
    /// The recipient's address alone (without a display name).
    pub fn address(&self) -> &str {
        match (self.to.rfind('<'), self.to.rfind('>')) {
            (Some(a), Some(b)) if a < b => &self.to[a + 1..b],
            _ => self.to.trim(),
        }
    }

    /// The links in the text part.
    pub fn links(&self) -> Vec<String> {
        self.text
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ',', ';', ')']).to_owned())
            .collect()
    }

    /// The one link, from its path on (`/reset/<token>`).
    pub fn link_path(&self) -> String {
        let links = self.links();
        assert_eq!(links.len(), 1, "one link in {self:?}");
        let rest = links[0].split_once("://").unwrap().1;
        format!("/{}", rest.split_once('/').unwrap().1)
    }

    /// The token at the end of the link.
    pub fn token(&self) -> String {
        self.link_path().rsplit('/').next().unwrap().to_owned()
    }
}

fn decode_qp(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
            if let Some(b) = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn decode_b64(s: &str) -> String {
    use base64::Engine;
    let clean: String = s.split_whitespace().collect();
    String::from_utf8_lossy(
        &base64::engine::general_purpose::STANDARD
            .decode(clean)
            .unwrap_or_default(),
    )
    .into_owned()
}

fn header(head: &str, name: &str) -> String {
    // Unfold continuation lines first.
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// A MIME part's decoded body.
fn part_body(part: &str) -> (String, String) {
    let (head, body) = part.split_once("\r\n\r\n").unwrap_or((part, ""));
    let ct = header(head, "Content-Type");
    let enc = header(head, "Content-Transfer-Encoding").to_ascii_lowercase();
    let body = match enc.as_str() {
        "quoted-printable" => decode_qp(body),
        "base64" => decode_b64(body),
        _ => body.replace("\r\n", "\n"),
    };
    (ct, body)
}

/// Parses an `.eml` file.
pub fn parse(file: &Path) -> Mail {
    let raw = std::fs::read_to_string(file).unwrap();
    let raw = if raw.contains("\r\n") {
        raw
    } else {
        raw.replace('\n', "\r\n")
    };
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let ct = header(head, "Content-Type");
    let (mut text, mut html) = (String::new(), String::new());
    if let Some(b) = ct.split("boundary=").nth(1) {
        let boundary = format!("--{}", b.trim_matches('"'));
        for part in body.split(&boundary) {
            let (ct, decoded) = part_body(part.trim_start_matches("\r\n"));
            if ct.starts_with("text/plain") {
                text = decoded;
            } else if ct.starts_with("text/html") {
                html = decoded;
            }
        }
    } else {
        text = part_body(&raw).1;
    }
    Mail {
        file: file.to_owned(),
        to: header(head, "To"),
        subject: header(head, "Subject"),
        text,
        html,
    }
}

/// Every mail in `dir`, oldest first (by file name).
pub fn all(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|f| {
        // file transport: <created>-<id>-<kind>.eml; sink: <n>.eml
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let key: Vec<u64> = name.split('-').filter_map(|p| p.parse().ok()).collect();
        (key, name)
    });
    files.iter().map(|f| parse(f)).collect()
}

/// Waits (at most 10 s, without blocking the runtime the app's worker runs
/// on) until `dir` holds at least `n` mails; returns them.
pub async fn wait_for_async(dir: &Path, n: usize) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mails = all(dir);
        if mails.len() >= n {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} mails in {}, found {}: {:?}",
            dir.display(),
            mails.len(),
            mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        rocket::tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The one mail with this subject to `to`, waiting for it.
pub async fn expect_mail(dir: &Path, to: &str, subject: &str) -> Mail {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = all(dir)
            .into_iter()
            .rev()
            .find(|m| m.address().eq_ignore_ascii_case(to) && m.subject == subject)
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no mail {subject:?} to {to} in {}: {:?}",
            dir.display(),
            all(dir)
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
        rocket::tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The test SMTP server: a real aiosmtpd on a loopback port.
pub struct Sink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _process: Process,
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

impl Sink {
    /// Starts the server on a free port (plain SMTP, no AUTH).
    pub fn start() -> Sink {
        Self::start_on(free_port(), &[])
    }

    /// Starts the server on `port` with extra arguments (`--user`, …).
    pub fn start_on(port: u16, args: &[&str]) -> Sink {
        let python = PathBuf::from(ROOT).join("target/smtp-venv/bin/python");
        assert!(
            python.exists(),
            "the test SMTP server is not installed: run scripts/venvs (scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python)
            .arg(PathBuf::from(ROOT).join("tests/smtp/sink.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the SMTP sink starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Sink {
            port,
            dir,
            _process: Process(child),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The envelope the server recorded for mail `n` (1-based).
    pub fn envelope(&self, n: usize) -> serde_json::Value {
        let f = self.dir.path().join(format!("{n:05}.json"));
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    }
}
