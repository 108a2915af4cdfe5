//! The command line: `urc serve` and `urc join`, parsed with clap and turned into settings.

use std::io::IsTerminal as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::client;
use crate::join;
use crate::relay;
use crate::render::Renderer;

/// urc, UDP Relay Chat: chat in terminals through one relay that loses nothing it acknowledged.
#[derive(Debug, Parser)]
#[command(name = "urc", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: clients join it, it stores every message and passes it on.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Join a relay's room and chat from this terminal (or from a script, through stdin).
    #[command(after_help = JOIN_EXAMPLES)]
    Join(JoinArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  urc serve                              listen on 127.0.0.1:7707, log in ~/.local/share/urc
  urc serve --bind 0.0.0.0:7707          serve the whole network
  urc serve --data /var/lib/urc          keep the message log elsewhere

The log is <data>/messages.jsonl, one JSON object a line: tail -f it, or read it with jq.";

const JOIN_EXAMPLES: &str = "\
Examples:
  urc join --name alice                  chat in the relay on 127.0.0.1:7707
  urc join --server chat.example:7707 --name 小明 --history 50
  echo 'build finished' | urc join --name ci-bot
  urc join --name bot --json < script.txt   one JSON event a line on stdout

In the terminal, type a message and Enter; /help lists the commands.";

/// Arguments of `urc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and UDP port to listen on.
    #[arg(long, default_value = crate::server::DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// Directory of the message log [default: $XDG_DATA_HOME/urc, i.e. ~/.local/share/urc].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seconds of silence after which a client is dropped.
    #[arg(long, default_value_t = relay::DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub timeout: u64,
    /// Most clients in the room at once.
    #[arg(long, default_value_t = relay::Config::default().max_clients)]
    pub max_clients: usize,
    /// Most clients from one IP address at once.
    #[arg(long, default_value_t = relay::Config::default().max_per_ip)]
    pub max_per_ip: usize,
    /// Messages a second each client may send on average; faster ones wait.
    #[arg(long, default_value_t = relay::Config::default().rate)]
    pub rate: f64,
    /// Messages each client may send at once above --rate (a paste, say).
    #[arg(long, default_value_t = relay::Config::default().burst)]
    pub burst: f64,
    /// History and /who requests a second each client may make (twice that at once).
    #[arg(long, default_value_t = relay::Config::default().request_rate)]
    pub request_rate: f64,
}

impl ServeArgs {
    /// The relay's settings.
    ///
    /// # Errors
    /// A one-line explanation when a limit makes no sense.
    pub fn config(&self) -> Result<relay::Config, String> {
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(format!(
                "--rate must be a positive number, not {}",
                self.rate
            ));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(format!("--burst must be at least 1, not {}", self.burst));
        }
        if !(self.request_rate > 0.0 && self.request_rate.is_finite()) {
            return Err(format!(
                "--request-rate must be a positive number, not {}",
                self.request_rate
            ));
        }
        if self.max_clients == 0 || self.max_per_ip == 0 {
            return Err("--max-clients and --max-per-ip must be at least 1".into());
        }
        Ok(relay::Config {
            timeout: Duration::from_secs(self.timeout),
            max_clients: self.max_clients,
            max_per_ip: self.max_per_ip,
            rate: self.rate,
            burst: self.burst,
            request_rate: self.request_rate,
            ..relay::Config::default()
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(crate::server::default_data_dir)
    }
}

/// Arguments of `urc join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The relay's address (host:port).
    #[arg(long, env = "URC_SERVER", default_value = crate::server::DEFAULT_BIND)]
    pub server: String,
    /// Your name in the room: 1 to 32 characters, no spaces [default: your login name].
    #[arg(long, env = "URC_NAME")]
    pub name: Option<String>,
    /// How many recent messages to show on joining (at most 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub history: u16,
    /// Print one JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait, when input ends, for the relay to acknowledge what was sent.
    #[arg(long, default_value_t = join::DEFAULT_WAIT.as_secs())]
    pub wait: u64,
}

impl JoinArgs {
    /// Checks the arguments and makes the session's settings.
    ///
    /// # Errors
    /// A one-line explanation of what is wrong with the arguments.
    pub fn options(&self, offset: time::UtcOffset) -> Result<join::Options, String> {
        let name = match &self.name {
            Some(name) => name.clone(),
            None => login_name().ok_or("no --name given and no login name found: pass --name")?,
        };
        crate::message::check_name(&name).map_err(|e| format!("invalid --name: {e}"))?;
        let server = self
            .server
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve --server {}: {e}", self.server))?
            .next()
            .ok_or_else(|| format!("--server {} has no address", self.server))?;
        let stdout_tty = std::io::stdout().is_terminal();
        let interactive = !self.json && std::io::stdin().is_terminal() && stdout_tty;
        // https://no-color.org: any non-empty NO_COLOR turns colour off.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ok(join::Options {
            server,
            client: client::Config {
                name,
                history: self.history,
            },
            renderer: Renderer::new(offset, self.json).with_color(stdout_tty && !no_color),
            interactive,
            wait: Duration::from_secs(self.wait),
        })
    }
}

/// The user's login name, from the environment.
fn login_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["urc", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.bind.port(), crate::server::DEFAULT_PORT);
        assert_eq!(args.config().unwrap().timeout, relay::DEFAULT_TIMEOUT);
        let cli = Cli::try_parse_from(["urc", "serve", "--rate", "0"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            args.config().unwrap_err(),
            "--rate must be a positive number, not 0"
        );
        let cli = Cli::try_parse_from(["urc", "join", "--name", "alice"]).unwrap();
        let Command::Join(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.history, 20);
        assert!(Cli::try_parse_from(["urc", "join", "--name", "a", "--history", "1001"]).is_err());
    }
}
