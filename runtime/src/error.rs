//! How a command-line edge prints an error: its whole chain of causes, each said once.
//!
//! Many errors already name their cause in their own message (`line 8: features.income: "lots"
//! is not a number`) and also expose it as `source()`. Printing the chain with `{:#}` then says
//! the cause twice; [`describe`] leaves out a cause whose text the message already contains.

use std::error::Error;

/// The error and its causes, joined by `": "`, without a cause the text already says.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    enum Failure {
        #[error("{path}: {source}")]
        Repeats {
            path: String,
            #[source]
            source: std::io::Error,
        },
        #[error("reading {path}")]
        Adds {
            path: String,
            #[source]
            source: std::io::Error,
        },
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn a_cause_the_message_already_names_is_said_once() {
        let e = Failure::Repeats {
            path: "nope.csv".into(),
            source: missing(),
        };
        assert_eq!(describe(&e), "nope.csv: No such file or directory");
    }

    #[test]
    fn a_cause_the_message_does_not_name_is_appended() {
        let e = Failure::Adds {
            path: "nope.csv".into(),
            source: missing(),
        };
        assert_eq!(describe(&e), "reading nope.csv: No such file or directory");
    }
}
