//! How `fnbox run` and `fnbox invoke` show an invocation's result: the body, verbatim, on one
//! line of stdout (also for a failure, so a script sees the error body); a failure becomes an
//! [`InvocationFailure`] that names `errorType: errorMessage`.

use std::io::Write;

use crate::InvocationFailure;

/// Prints `body` and a newline to stdout; when the invocation `failed`, returns why.
///
/// A closed stdout (e.g. `fnbox run … | head -0`) is not an error of the function, so write
/// errors are ignored here.
pub fn show(request_id: &str, body: &[u8], failed: bool) -> Result<(), InvocationFailure> {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(body);
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
    if failed {
        return Err(InvocationFailure {
            request_id: request_id.to_string(),
            reason: describe_error_body(body),
        });
    }
    Ok(())
}

/// `errorType: errorMessage` of an error body, or the body as text when it is not one.
fn describe_error_body(body: &[u8]) -> String {
    match serde_json::from_slice::<fnbox_wire::fg::ErrorBody>(body) {
        Ok(b) if !b.error_type.is_empty() || !b.error_message.is_empty() => {
            format!("{}: {}", b.error_type, b.error_message)
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_described_by_its_type_and_message() {
        assert_eq!(
            describe_error_body(br#"{"errorType":"KeyError","errorMessage":"missing key"}"#),
            "KeyError: missing key"
        );
        assert_eq!(describe_error_body(b"plain text"), "plain text");
        assert_eq!(describe_error_body(b"{}"), "{}");
    }

    #[test]
    fn a_failure_names_the_request() {
        let err = show("r-1", br#"{"errorType":"E","errorMessage":"m"}"#, true).unwrap_err();
        assert_eq!(err.to_string(), "request 'r-1' failed: E: m");
        assert!(show("r-2", b"{}", false).is_ok());
    }
}
