//! The client secret is zeroed when dropped: a counting allocator scans every block as it
//! is freed, and no freed block may still hold the secret.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lwolf_auth::{Config, SecretString};

const SECRET: &[u8] = b"ZEROIZE-CANARY-7f3a9c21e4b8d605";

struct ScanningAllocator;

static SCANNING: AtomicBool = AtomicBool::new(false);
static LEAKED_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static SCANNED_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every allocation to the system allocator; `dealloc` only reads the
// block it is about to free, which is still valid for `layout.size()` bytes.
unsafe impl GlobalAlloc for ScanningAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::Relaxed) {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            SCANNED_BLOCKS.fetch_add(1, Ordering::Relaxed);
            if block.windows(SECRET.len()).any(|w| w == SECRET) {
                LEAKED_BLOCKS.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A realloc that moves the block frees the old one without zeroing it: count it.
        if SCANNING.load(Ordering::Relaxed) {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(SECRET.len()).any(|w| w == SECRET) {
                LEAKED_BLOCKS.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: ScanningAllocator = ScanningAllocator;

fn secret_str() -> &'static str {
    std::str::from_utf8(SECRET).unwrap()
}

/// One test function: the scanner's state is global, so the control and the real check
/// must not run at the same time.
#[test]
fn secret_is_zeroed_on_drop_through_builder_config_and_clones() {
    // The control: a plain String is NOT zeroed, and the scanner must notice it, or the
    // check below proves nothing.
    SCANNING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(String::from(secret_str())));
    SCANNING.store(false, Ordering::SeqCst);
    assert!(
        LEAKED_BLOCKS.swap(0, Ordering::SeqCst) > 0,
        "the scanner missed a plain String"
    );

    let dir = std::env::temp_dir().join(format!("lwolf-zeroize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, [SECRET, b"\n"].concat()).unwrap();

    SCANNING.store(true, Ordering::SeqCst);
    {
        let s = SecretString::from(secret_str());
        let copy = s.clone();
        drop(s);
        drop(copy);

        let mut builder = Config::builder().client_id("zeroize-test");
        builder.set("client_secret", secret_str()).unwrap();
        let config = builder.build().unwrap();
        let cloned = config.clone();
        drop(builder);
        drop(config);
        drop(cloned);

        let from_file = Config::builder()
            .client_id("zeroize-test")
            .client_secret_file(&file)
            .build()
            .unwrap();
        drop(from_file);
    }
    SCANNING.store(false, Ordering::SeqCst);
    std::fs::remove_dir_all(&dir).ok();

    assert!(SCANNED_BLOCKS.load(Ordering::SeqCst) > 0);
    assert_eq!(
        LEAKED_BLOCKS.load(Ordering::SeqCst),
        0,
        "a freed block still held the client secret"
    );
}
