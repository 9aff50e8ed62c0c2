//! A real terminal (tmux) for commands that prompt or need a TTY.

/// A terminal under tmux, for commands that prompt.
pub(crate) struct Terminal {
    socket: String,
}

impl Terminal {
    pub(crate) fn start(script: &str, dir: &std::path::Path) -> Self {
        let path = dir.join("run.sh");
        std::fs::write(&path, script).unwrap();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket = format!(
            "coder-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let status = std::process::Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                "sh",
            ])
            .arg(&path)
            .status()
            .expect("tmux is installed");
        assert!(status.success());
        Self { socket }
    }

    pub(crate) fn screen(&self) -> String {
        let output = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub(crate) async fn wait_for(&self, text: &str) -> String {
        testkit::eventually(std::time::Duration::from_secs(20), text, || {
            let screen = self.screen();
            async move { screen.contains(text).then_some(screen) }
        })
        .await
    }

    pub(crate) fn type_line(&self, text: &str) {
        for keys in [text, "Enter"] {
            let mut command = std::process::Command::new("tmux");
            command.args(["-L", &self.socket, "send-keys"]);
            if keys != "Enter" {
                command.arg("-l");
            }
            assert!(command.arg(keys).status().unwrap().success());
        }
    }
}

impl Terminal {
    /// Sends tmux key names (e.g. `C-c`).
    pub(crate) fn keys(&self, keys: &str) {
        let status = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", keys])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Resizes the terminal, as a user dragging the window would.
    pub(crate) fn resize(&self, columns: u16, rows: u16) {
        let status = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-x"])
            .arg(columns.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
