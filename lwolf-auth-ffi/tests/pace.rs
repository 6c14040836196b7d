//! The pace of API calls through the C ABI (`max_in_flight`, `max_requests_per_second`, and
//! `LWOLF_ERR_DEADLINE` for a caller whose deadline passes while it waits its turn), against
//! the sandbox, which counts the requests it is answering at once.

use std::ffi::CString;
use std::ptr;
use std::time::Duration;

use lwolf_auth_ffi::{
    lwolf_client, lwolf_client_free, lwolf_client_send, lwolf_client_stats, lwolf_request,
    lwolf_request_free, lwolf_request_new, lwolf_response, lwolf_response_free,
    lwolf_response_status, lwolf_stats, lwolf_status,
};
use lwolf_sandbox::Sandbox;
use lwolf_test_support::c_calls;

fn client(sandbox: &Sandbox, extra: &[(&str, &str)]) -> *mut lwolf_client {
    let mut settings = vec![
        ("client_id", sandbox.client_id().to_owned()),
        ("client_secret", sandbox.client_secret().to_owned()),
        ("token_url", sandbox.token_url()),
        ("api_base_url", sandbox.api_base_url()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c_calls::client(&settings)
}

/// `GET path` through `lwolf_client_send`: the HTTP status, or the failure's status and
/// message.
fn get(client: *const lwolf_client, path: &str) -> Result<u16, (lwolf_status, String)> {
    let method = CString::new("GET").unwrap();
    let path = CString::new(path).unwrap();
    let mut request: *mut lwolf_request = ptr::null_mut();
    // SAFETY: NUL-terminated strings that outlive the call; `request` is written on success.
    let status = unsafe { lwolf_request_new(method.as_ptr(), path.as_ptr(), &mut request) };
    assert_eq!(status, lwolf_status::LWOLF_OK, "{}", c_calls::last_error());
    let mut response: *mut lwolf_response = ptr::null_mut();
    // SAFETY: a live client and request; `response` is written on success.
    let status = unsafe { lwolf_client_send(client, request, &mut response) };
    let outcome = if status == lwolf_status::LWOLF_OK {
        // SAFETY: the response the call just made.
        Ok(unsafe { lwolf_response_status(response) })
    } else {
        Err((status, c_calls::last_error()))
    };
    // SAFETY: handles this test owns (the response is NULL after a failure).
    unsafe {
        lwolf_response_free(response);
        lwolf_request_free(request);
    }
    outcome
}

fn throttled(client: *const lwolf_client) -> u64 {
    // SAFETY: an all-zero lwolf_stats is valid; its size is set before the call.
    let mut stats: lwolf_stats = unsafe { std::mem::zeroed() };
    stats.size = std::mem::size_of::<lwolf_stats>() as u32;
    // SAFETY: a live client and a whole, writable struct.
    let status = unsafe { lwolf_client_stats(client, &mut stats) };
    assert_eq!(status, lwolf_status::LWOLF_OK);
    stats.throttled
}

/// A client handle that threads share, as the contract allows.
#[derive(Clone, Copy)]
struct Shared(*mut lwolf_client);
// SAFETY: lwolf_client is thread-safe (every call through `*const`).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

#[test]
fn max_in_flight_holds_for_c_callers_on_16_threads() {
    let sandbox = Sandbox::builder()
        .api_latency(Duration::from_millis(50))
        .start()
        .unwrap();
    let client = Shared(client(&sandbox, &[("max_in_flight", "2")]));
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(move || {
                let client = client;
                for _ in 0..4 {
                    assert_eq!(get(client.0, "/v1/transactions"), Ok(200));
                }
            });
        }
    });
    assert_eq!(sandbox.api_requests(), 64);
    assert_eq!(
        sandbox.api_in_flight_peak(),
        2,
        "never more than 2 at once, and 2 used"
    );
    // SAFETY: the threads are done with it.
    unsafe { lwolf_client_free(client.0) };
}

#[test]
fn a_c_caller_whose_deadline_passes_in_line_gets_deadline_and_sends_nothing() {
    let sandbox = Sandbox::start().unwrap();
    let client = client(
        &sandbox,
        &[("max_requests_per_second", "1"), ("deadline_ms", "500")],
    );
    assert_eq!(get(client, "/v1/transactions"), Ok(200));
    // The next start is a second away: past this call's deadline.
    let (status, message) = get(client, "/v1/transactions").unwrap_err();
    assert_eq!(status, lwolf_status::LWOLF_ERR_DEADLINE, "{message}");
    assert_eq!(status as u32, 13);
    assert!(message.contains("max_requests_per_second"), "{message}");
    assert_eq!(
        sandbox.api_requests(),
        1,
        "nothing sent for the caller that gave up"
    );
    assert_eq!(throttled(client), 1);
    // SAFETY: this test's handle.
    unsafe { lwolf_client_free(client) };
}
