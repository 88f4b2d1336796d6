//! Devices: every sign-in is one (its browser session, its refresh family
//! and the tokens minted from them), with a readable label, the address,
//! created and last-used times. A user lists them and signs one out, or
//! every other one; that device's session, refresh family and tokens stop
//! working on their next request, on every instance (the per-request
//! lookup of a device token reads its row).

use super::recovery::Origin;
use super::{CoreError, Security};
use crate::db::User;

/// A device as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceView {
    /// Its id (for "sign out").
    pub id: String,
    /// Browser and system.
    pub label: String,
    /// The address it signed in from.
    pub ip: Option<String>,
    /// Unix seconds it signed in.
    pub created_at: i64,
    /// Unix seconds it was last seen.
    pub last_used_at: i64,
    /// Whether it is the device of the request.
    pub current: bool,
}

/// A short readable name for a User-Agent: "Firefox on Linux", "curl".
pub fn label(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("").trim();
    if ua.is_empty() {
        return "Unknown device".to_owned();
    }
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") {
        Some("Edge")
    } else if has("OPR/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") {
        Some("Firefox")
    } else if has("Chromium/") {
        Some("Chromium")
    } else if has("HeadlessChrome/") || has("Chrome/") || has("CriOS/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let os = if has("iPhone") || has("iPad") {
        Some("iOS")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("A browser on {o}"),
        // A program: its name, as it gives it ("curl/8.5.0" -> "curl").
        (None, None) => {
            let name: String = ua
                .split(['/', ' '])
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .take(40)
                .collect();
            if name.is_empty() {
                "Unknown device".to_owned()
            } else {
                name
            }
        }
    }
}

/// A new device id: 128 random bits, hex.
fn new_id() -> String {
    super::random_hex::<16>()
}

impl Security {
    /// Records a new device for a sign-in of `user` from `origin`, whose
    /// primary authentication was at `authn_at`, alive until `lives_until`
    /// (unix seconds; its sessions and tokens extend it).
    pub async fn new_device(
        &self,
        user: &User,
        origin: &Origin,
        authn_at: f64,
        lives_until: i64,
    ) -> Result<String, CoreError> {
        let id = new_id();
        let ip = origin.ip.map(|ip| ip.to_string());
        self.db
            .create_device(
                &id,
                user.id,
                &label(origin.user_agent.as_deref()),
                ip.as_deref(),
                self.now(),
                lives_until,
                authn_at,
            )
            .await?;
        Ok(id)
    }

    /// Keeps `device` alive until at least `until`; false when it was
    /// revoked in the meantime.
    pub async fn extend_device(&self, device: &str, until: i64) -> Result<bool, CoreError> {
        Ok(self.db.extend_device(device, until, self.now()).await?)
    }

    /// A token for `user`'s `device` with primary authentication at `paa`
    /// (also keeps the device alive for the token's lifetime).
    pub async fn device_token(
        &self,
        user: &User,
        device: Option<&str>,
        paa: f64,
    ) -> Result<String, CoreError> {
        if let Some(d) = device {
            self.extend_device(d, self.now() + self.config.token_max_age as i64)
                .await?;
        }
        Ok(self
            .signer
            .mint_for(&user.fs_uniquifier, paa, self.now().max(0) as u64, device))
    }

    /// The user's live devices, `current` marked.
    pub async fn devices(
        &self,
        user: &User,
        current: Option<&str>,
    ) -> Result<Vec<DeviceView>, CoreError> {
        let rows = self.db.list_devices(user.id, self.now()).await?;
        Ok(rows
            .into_iter()
            .map(|r| DeviceView {
                current: current == Some(r.id.as_str()),
                id: r.id,
                label: r.label,
                ip: r.ip,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
            .collect())
    }

    /// Signs one of `user`'s devices out; false when they have no such
    /// device.
    pub async fn revoke_device(&self, user: &User, id: &str) -> Result<bool, CoreError> {
        let n = self.db.revoke_devices(user.id, Some(id), None).await?;
        if n > 0 {
            tracing::info!(
                event = "device_revoked",
                user_id = user.id,
                "a device was signed out"
            );
        }
        Ok(n > 0)
    }

    /// Signs every device of `user` out but `keep` (this one). Returns how
    /// many.
    pub async fn revoke_other_devices(
        &self,
        user: &User,
        keep: Option<&str>,
    ) -> Result<u64, CoreError> {
        let n = self.db.revoke_devices(user.id, None, keep).await?;
        tracing::info!(
            event = "devices_revoked",
            user_id = user.id,
            count = n,
            "every other device was signed out"
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_read_well() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iOS"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Chrome on Linux"),
            ("curl/8.5.0", "curl"),
            ("python-requests/2.32.3", "python-requests"),
            ("<script>", "script"),
            ("", "Unknown device"),
        ];
        for (ua, want) in cases {
            assert_eq!(label(Some(ua)), want, "{ua}");
        }
        assert_eq!(label(None), "Unknown device");
    }
}
