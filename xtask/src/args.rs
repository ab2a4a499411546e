//! The command line of `cargo xtask`, read with lexopt.

use std::ffi::OsString;

use lexopt::prelude::*;

/// What `cargo xtask` was asked to do.
#[derive(Debug, PartialEq)]
pub enum Task {
    Help,
    Test { setup: bool, filters: Vec<String> },
    Qemu,
    Size,
    Fuzz { seconds: u64, targets: Vec<String> },
}

/// Parses the arguments after `cargo xtask`; `Ok(None)` when there are none.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Task>, lexopt::Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let command = match parser.next()? {
        None => return Ok(None),
        Some(Short('h') | Long("help")) => return Ok(Some(Task::Help)),
        Some(Value(command)) => command.string()?,
        Some(arg) => return Err(arg.unexpected()),
    };
    let task = match command.as_str() {
        "help" => Task::Help,
        "test" => {
            let (mut setup, mut filters) = (true, Vec::new());
            while let Some(arg) = parser.next()? {
                match arg {
                    Long("no-setup") => setup = false,
                    Value(filter) => filters.push(filter.string()?),
                    _ => return Err(arg.unexpected()),
                }
            }
            Task::Test { setup, filters }
        }
        "fuzz" => {
            let (mut seconds, mut targets) = (60, Vec::new());
            while let Some(arg) = parser.next()? {
                match arg {
                    Long("seconds") => {
                        seconds = parser
                            .value()
                            .ok()
                            .and_then(|n| n.parse().ok())
                            .filter(|&n| n > 0)
                            .ok_or("--seconds needs a whole number of seconds > 0")?
                    }
                    Value(target) => targets.push(target.string()?),
                    _ => return Err(arg.unexpected()),
                }
            }
            Task::Fuzz { seconds, targets }
        }
        "qemu" | "size" => {
            if let Some(arg) = parser.next()? {
                return Err(arg.unexpected());
            }
            if command == "qemu" {
                Task::Qemu
            } else {
                Task::Size
            }
        }
        other => return Err(format!("unknown command `{other}`").into()),
    };
    Ok(Some(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Option<Task>, String> {
        parse(line.split_whitespace().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn commands_and_options_are_read() {
        assert_eq!(parse_str(""), Ok(None));
        assert_eq!(parse_str("--help"), Ok(Some(Task::Help)));
        assert_eq!(parse_str("help"), Ok(Some(Task::Help)));
        assert_eq!(parse_str("size"), Ok(Some(Task::Size)));
        assert_eq!(
            parse_str("test --no-setup fmt clippy"),
            Ok(Some(Task::Test {
                setup: false,
                filters: vec!["fmt".into(), "clippy".into()]
            }))
        );
        assert_eq!(
            parse_str("fuzz --seconds 5 decode"),
            Ok(Some(Task::Fuzz {
                seconds: 5,
                targets: vec!["decode".into()]
            }))
        );
        assert_eq!(
            parse_str("fuzz --seconds=7"),
            Ok(Some(Task::Fuzz {
                seconds: 7,
                targets: vec![]
            }))
        );
    }

    #[test]
    fn bad_command_lines_are_errors() {
        for line in [
            "bogus",
            "test --bogus",
            "fuzz --seconds 0",
            "fuzz --seconds",
            "size x",
        ] {
            assert!(parse_str(line).is_err(), "{line}");
        }
    }
}
