//! Kernel change notifications: a netlink socket subscribed to the link,
//! address and route multicast groups. The messages are not parsed: any of
//! them means "something changed", and the next detection reads the truth.

use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use std::io;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

// rtnetlink multicast groups (linux/rtnetlink.h, the legacy bitmask form).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
const ENOBUFS: i32 = 105;

/// Something that says when the node's network changed.
pub trait ChangeSource {
    fn changed(&mut self) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

pub struct KernelEvents {
    socket: TokioSocket,
    buf: Vec<u8>,
}

impl KernelEvents {
    pub fn subscribe() -> io::Result<Self> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        let groups =
            RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE;
        socket.socket_mut().bind(&SocketAddr::new(0, groups))?;
        Ok(KernelEvents { socket, buf: Vec::with_capacity(64 * 1024) })
    }
}

impl ChangeSource for KernelEvents {
    /// Waits for the next change. An overrun of the socket's buffer (a burst
    /// of changes) is a change too.
    async fn changed(&mut self) -> io::Result<()> {
        self.buf.clear();
        match self.socket.recv(&mut self.buf).await {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// When to detect again after a change: once the kernel has been quiet for
/// `quiet`, but no later than `max_delay` after the first change, so a
/// never-ending stream of changes still gets detected.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub quiet: Duration,
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce { quiet: Duration::from_secs(2), max_delay: Duration::from_secs(10) }
    }
}

impl Debounce {
    /// Absorbs the changes that follow the first one until the deadline.
    /// Returns the error of the event source if it fails.
    pub async fn settle(&self, source: &mut impl ChangeSource) -> io::Result<()> {
        let hard = Instant::now() + self.max_delay;
        loop {
            let deadline = (Instant::now() + self.quiet).min(hard);
            tokio::select! {
                r = source.changed() => r?,
                _ = sleep_until(deadline) => return Ok(()),
            }
            if Instant::now() >= hard {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `left` changes `gap` apart, then stays silent.
    struct Fake {
        left: u32,
        seen: u32,
        gap: Duration,
    }

    impl ChangeSource for Fake {
        async fn changed(&mut self) -> io::Result<()> {
            if self.left == 0 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.gap).await;
            self.left -= 1;
            self.seen += 1;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_quiet() {
        let d = Debounce::default();
        let mut src = Fake { left: 5, seen: 0, gap: Duration::from_millis(500) };
        let start = Instant::now();
        d.settle(&mut src).await.unwrap();
        assert_eq!(src.seen, 5);
        // 5 changes 0.5 s apart, then 2 s of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(2500) + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_stream_still_settles_at_the_max_delay() {
        let d = Debounce::default();
        let mut src = Fake { left: u32::MAX, seen: 0, gap: Duration::from_millis(100) };
        let start = Instant::now();
        d.settle(&mut src).await.unwrap();
        assert!(start.elapsed() <= d.max_delay + Duration::from_millis(100), "{:?}", start.elapsed());
        assert!(src.seen >= 99, "{}", src.seen);
    }
}
