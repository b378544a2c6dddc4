//! A System V shared-memory segment that the X server writes captured pixels into.
//! All `unsafe` of the X11 source lives here.

use super::SourceError;

/// An attached, private segment. Marked for removal right after the X server has attached it,
/// so it disappears when both sides detach, even if this process is killed.
#[derive(Debug)]
pub struct ShmSegment {
    id: i32,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread moves that
// ownership. The X server writes into it only during a ShmGetImage request whose reply we wait
// for, while `&mut self` of the owning source is held.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    /// Creates and maps a segment of `len` bytes.
    pub fn new(len: usize) -> Result<Self, SourceError> {
        // SAFETY: plain syscall with valid arguments; the result is checked.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(SourceError::SharedMemory(format!(
                "shmget({len}) failed: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `id` is a segment we just created; a null address lets the kernel choose.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if ptr as isize == -1 {
            let err = std::io::Error::last_os_error();
            // SAFETY: removing the segment we created and could not map.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(SourceError::SharedMemory(format!("shmat failed: {err}")));
        }
        Ok(Self {
            id,
            ptr: ptr.cast(),
            len,
        })
    }

    /// The segment id to hand to the X server.
    pub fn id(&self) -> u32 {
        self.id as u32
    }

    /// Marks the segment for removal once every attachment is gone. Call after the X server
    /// has attached it (a round trip after ShmAttach).
    pub fn mark_removed(&self) {
        // SAFETY: IPC_RMID on our own segment id; harmless if already marked.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }

    /// The mapped bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives; `&mut self` gives
        // exclusive access on our side, and the server writes only while we wait for a reply.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        self.mark_removed();
        // SAFETY: `ptr` came from shmat and is detached exactly once, here.
        unsafe { libc::shmdt(self.ptr.cast()) };
    }
}
