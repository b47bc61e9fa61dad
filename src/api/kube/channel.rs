//! The remote command protocol of `exec` and `attach` over WebSocket
//! (`v4.channel.k8s.io` and `v5.channel.k8s.io`), without any I/O: the
//! request's parameters, the frames, the terminal sizes and the `Status`
//! that ends a session.
//!
//! Every WebSocket message is binary; its first byte names the channel:
//!
//! | byte | direction        | what                                         |
//! |------|------------------|----------------------------------------------|
//! | 0    | client → server  | stdin                                        |
//! | 1    | server → client  | stdout (everything, with a tty)              |
//! | 2    | server → client  | stderr                                       |
//! | 3    | server → client  | one JSON `Status` at the end, then the close |
//! | 4    | client → server  | terminal size `{"Width":W,"Height":H}`       |
//! | 255  | client → server  | v5 only: `[255, n]` closes channel `n`       |
//!
//! kubectl reads the error channel until the connection closes, so the
//! server sends the `Status` and then a normal WebSocket close. A non-zero
//! exit is a `Failure` with reason `NonZeroExitCode` and an `ExitCode`
//! cause whose message is the code: kubectl exits with that code.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::runtime::TermSize;

/// stdin, client → server.
pub const STDIN: u8 = 0;
/// stdout, server → client.
pub const STDOUT: u8 = 1;
/// stderr, server → client.
pub const STDERR: u8 = 2;
/// The closing `Status`, server → client.
pub const ERROR: u8 = 3;
/// Terminal sizes, client → server.
pub const RESIZE: u8 = 4;
/// v5's "close channel n", client → server.
pub const CLOSE: u8 = 255;

/// A served version of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Binary channels, the `Status` with exit codes on channel 3.
    V4,
    /// V4 plus the close channel (255), so a client can end stdin.
    V5,
}

impl Protocol {
    /// The subprotocols served, the preferred first.
    pub const SERVED: [Protocol; 2] = [Protocol::V5, Protocol::V4];

    /// The `Sec-WebSocket-Protocol` name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::SERVED.into_iter().find(|p| p.name() == name)
    }
}

/// A message the server sends on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(channel);
    f.extend_from_slice(data);
    f.into()
}

/// What a client's message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// The client's terminal has this size now.
    Resize(TermSize),
    /// The client's stdin ended: close the process's stdin (v5).
    CloseStdin,
    /// Nothing to do: an empty message, the close of another channel, or
    /// (v4) anything on channel 255.
    Nothing,
}

/// A client's message the server cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a message on channel {0}, which a client does not write to")]
    NotWritable(u8),
    #[error("terminal size {text:?} is not {{\"Width\":W,\"Height\":H}}: {reason}")]
    BadResize { text: String, reason: String },
    #[error("close signal without a channel")]
    BadClose,
}

/// Reads one binary message of a client speaking `protocol`.
pub fn decode(protocol: Protocol, message: &[u8]) -> Result<Inbound, FrameError> {
    let Some((&channel, data)) = message.split_first() else {
        return Ok(Inbound::Nothing);
    };
    match channel {
        STDIN if data.is_empty() => Ok(Inbound::Nothing),
        STDIN => Ok(Inbound::Stdin(Bytes::copy_from_slice(data))),
        RESIZE => parse_resize(data).map(Inbound::Resize),
        CLOSE if protocol == Protocol::V4 => Ok(Inbound::Nothing),
        CLOSE => match data.first() {
            Some(&STDIN) => Ok(Inbound::CloseStdin),
            Some(_) => Ok(Inbound::Nothing),
            None => Err(FrameError::BadClose),
        },
        other => Err(FrameError::NotWritable(other)),
    }
}

#[derive(serde::Deserialize)]
struct WireSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// A resize message: one or more JSON sizes (client-go's encoder ends each
/// with a newline); the last one counts.
pub fn parse_resize(data: &[u8]) -> Result<TermSize, FrameError> {
    let bad = |reason: String| FrameError::BadResize {
        text: String::from_utf8_lossy(data).chars().take(100).collect(),
        reason,
    };
    let mut last = None;
    for size in serde_json::Deserializer::from_slice(data).into_iter::<WireSize>() {
        let size = size.map_err(|e| bad(e.to_string()))?;
        last = Some(TermSize {
            width: size.width,
            height: size.height,
        });
    }
    last.ok_or_else(|| bad("empty".into()))
}

/// The `Status` of a session that ended well (an exit code 0, the end of
/// an attach).
pub fn success_status() -> Value {
    json!({"metadata": {}, "status": "Success"})
}

/// The `Status` of a command that ran to its end: `Success` for 0, a
/// `NonZeroExitCode` failure naming `command` and the code for 1 to 255
/// (kubectl exits with it), a plain failure for what is no exit code.
pub fn exit_status(command: &[String], exit_code: i64) -> Value {
    if exit_code == 0 {
        return success_status();
    }
    if !(1..=255).contains(&exit_code) {
        return failure_status(format!(
            "command {command:?} ended without a usable exit code ({exit_code})"
        ));
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {exit_code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]},
    })
}

/// The `Status` of a session that failed (the command could not start, the
/// engine went away): kubectl prints the message and exits with 1.
pub fn failure_status(message: impl Into<String>) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": "InternalError",
        "code": 500,
    })
}

/// `exec` or `attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Exec,
    Attach,
}

/// What an `exec` or `attach` request asks for, from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// The argv of `exec` (empty for `attach`).
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    /// Never with a tty: a terminal has only one output.
    pub stderr: bool,
    pub tty: bool,
}

/// A query the server refuses, with the API server's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("{name}: Invalid value: {value:?}: not a boolean")]
    NotABool { name: String, value: String },
    #[error("you must specify at least one command for the container")]
    NoCommand,
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
}

/// Go's `strconv.ParseBool`, which the API server's query decoding uses.
fn parse_bool(name: &str, value: &str) -> Result<bool, OptionsError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(OptionsError::NotABool {
            name: name.into(),
            value: value.into(),
        }),
    }
}

impl StreamOptions {
    /// Reads the query pairs (`command` repeated, one per argv element);
    /// unknown keys are ignored, as the API server does.
    pub fn parse(verb: Verb, query: &[(String, String)]) -> Result<Self, OptionsError> {
        let mut o = StreamOptions {
            command: Vec::new(),
            container: None,
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        };
        for (k, v) in query {
            match k.as_str() {
                "command" => o.command.push(v.clone()),
                "container" if !v.is_empty() => o.container = Some(v.clone()),
                "stdin" => o.stdin = parse_bool(k, v)?,
                "stdout" => o.stdout = parse_bool(k, v)?,
                "stderr" => o.stderr = parse_bool(k, v)?,
                "tty" => o.tty = parse_bool(k, v)?,
                _ => {}
            }
        }
        if verb == Verb::Exec && o.command.is_empty() {
            return Err(OptionsError::NoCommand);
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(OptionsError::NoStreams);
        }
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }

    /// The channel of the empty message that tells the client the session
    /// is up (the kubelet sends one): the first output it reads.
    pub fn hello_channel(&self) -> u8 {
        if self.stdout {
            STDOUT
        } else if self.stderr {
            STDERR
        } else {
            ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn protocols_by_name_v5_preferred() {
        assert_eq!(Protocol::from_name("v5.channel.k8s.io"), Some(Protocol::V5));
        assert_eq!(Protocol::from_name("v4.channel.k8s.io"), Some(Protocol::V4));
        assert_eq!(Protocol::from_name("channel.k8s.io"), None);
        assert_eq!(Protocol::from_name("SPDY/3.1"), None);
        assert_eq!(Protocol::SERVED[0], Protocol::V5);
    }

    #[test]
    fn frames_start_with_their_channel() {
        assert_eq!(&frame(STDOUT, b"hi")[..], b"\x01hi");
        assert_eq!(&frame(STDERR, b"")[..], b"\x02");
        assert_eq!(&frame(ERROR, b"{}")[..], b"\x03{}");
    }

    #[test]
    fn stdin_frames_carry_their_bytes() {
        assert_eq!(
            decode(Protocol::V5, b"\x00data\n"),
            Ok(Inbound::Stdin(Bytes::from_static(b"data\n")))
        );
        assert_eq!(decode(Protocol::V4, b"\x00"), Ok(Inbound::Nothing));
        assert_eq!(decode(Protocol::V4, b""), Ok(Inbound::Nothing));
    }

    #[test]
    fn close_of_stdin_only_in_v5() {
        assert_eq!(decode(Protocol::V5, &[255, 0]), Ok(Inbound::CloseStdin));
        assert_eq!(decode(Protocol::V5, &[255, 4]), Ok(Inbound::Nothing));
        assert_eq!(decode(Protocol::V5, &[255]), Err(FrameError::BadClose));
        assert_eq!(decode(Protocol::V4, &[255, 0]), Ok(Inbound::Nothing));
    }

    #[test]
    fn clients_do_not_write_output_channels() {
        for ch in [STDOUT, STDERR, ERROR, 7] {
            assert_eq!(
                decode(Protocol::V5, &[ch, b'x']),
                Err(FrameError::NotWritable(ch))
            );
        }
    }

    #[test]
    fn resize_reads_client_go_json() {
        assert_eq!(
            decode(Protocol::V5, b"\x04{\"Width\":100,\"Height\":40}\n"),
            Ok(Inbound::Resize(TermSize {
                width: 100,
                height: 40
            }))
        );
        // Two in one message: the last counts.
        assert_eq!(
            parse_resize(b"{\"Width\":1,\"Height\":2}\n{\"Width\":80,\"Height\":24}\n"),
            Ok(TermSize {
                width: 80,
                height: 24
            })
        );
    }

    #[test]
    fn bad_resizes_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"Width\":-1,\"Height\":2}",
            b"{\"Width\":70000,\"Height\":2}",
            b"not json",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_resize(bad), Err(FrameError::BadResize { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn exit_zero_is_success() {
        assert_eq!(
            exit_status(&["true".into()], 0),
            json!({"metadata": {}, "status": "Success"})
        );
    }

    #[test]
    fn a_non_zero_exit_carries_the_code_as_the_exit_code_cause() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        let s = exit_status(&cmd, 3);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command \
             [\"sh\", \"-c\", \"exit 3\"], exit code 3"
        );
        assert_eq!(
            exit_status(&cmd, 137)["details"]["causes"][0]["message"],
            "137"
        );
    }

    #[test]
    fn what_is_no_exit_code_is_a_plain_failure() {
        // kubectl reads the ExitCode cause as an unsigned byte.
        for code in [-1, 256, 1 << 40] {
            let s = exit_status(&["x".into()], code);
            assert_eq!(s["status"], "Failure", "{code}");
            assert_ne!(s["reason"], "NonZeroExitCode", "{code}");
            assert!(
                s["message"].as_str().unwrap().contains(&code.to_string()),
                "{s}"
            );
        }
        assert_eq!(exit_status(&["x".into()], 255)["reason"], "NonZeroExitCode");
    }

    #[test]
    fn a_failure_has_a_message_and_no_exit_code() {
        let s = failure_status("container app is not running");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["message"], "container app is not running");
        assert_ne!(s["reason"], "NonZeroExitCode");
        assert!(s.get("details").is_none());
    }

    #[test]
    fn options_read_repeated_commands_and_booleans() {
        let o = StreamOptions::parse(
            Verb::Exec,
            &q(&[
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo a b"),
                ("container", "app"),
                ("stdin", "true"),
                ("stdout", "1"),
                ("stderr", "True"),
                ("tty", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a b"]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        assert_eq!(o.hello_channel(), STDOUT);
    }

    #[test]
    fn a_tty_has_no_stderr() {
        let o = StreamOptions::parse(
            Verb::Exec,
            &q(&[
                ("command", "sh"),
                ("stdout", "true"),
                ("stderr", "true"),
                ("tty", "true"),
            ]),
        )
        .unwrap();
        assert!(o.tty && o.stdout && !o.stderr);
    }

    #[test]
    fn options_refuse_what_the_api_server_refuses() {
        assert_eq!(
            StreamOptions::parse(Verb::Exec, &q(&[("stdout", "true")])),
            Err(OptionsError::NoCommand)
        );
        assert_eq!(
            StreamOptions::parse(Verb::Exec, &q(&[("command", "ls")])),
            Err(OptionsError::NoStreams)
        );
        assert!(matches!(
            StreamOptions::parse(Verb::Exec, &q(&[("command", "ls"), ("stdout", "yes")])),
            Err(OptionsError::NotABool { .. })
        ));
        // attach needs no command.
        let a = StreamOptions::parse(Verb::Attach, &q(&[("stderr", "true")])).unwrap();
        assert!(a.command.is_empty());
        assert_eq!(a.hello_channel(), STDERR);
    }
}
