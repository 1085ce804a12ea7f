//! Synchronous rtnetlink dumps that hand each message to a callback.
//!
//! A dump is read one socket buffer at a time and every message is folded by
//! the caller before the next read, so memory stays bounded by the buffer no
//! matter how many routes the node carries (an async channel would queue the
//! whole table whenever the consumer is slower than the socket).

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Errors name the operation, so "netlink route dump: Operation not permitted"
/// tells the user what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink {op}: the kernel answered error {code}")]
    Kernel { op: &'static str, code: i32 },
    #[error("netlink {op}: cannot decode the kernel's answer: {detail}")]
    Decode { op: &'static str, detail: String },
    #[error("netlink {op}: the dump was interrupted by concurrent changes {attempts} times in a row")]
    Interrupted { op: &'static str, attempts: u32 },
}

/// Receive buffer: the kernel fills up to about 32 KiB per dump read; a
/// larger buffer only wastes memory.
const RECV_BUFFER: usize = 64 * 1024;
/// A dump that raced with changes (NLM_F_DUMP_INTR) is restarted this often.
const MAX_ATTEMPTS: u32 = 5;

/// What a dump hands to its consumer.
pub enum DumpEvent {
    Message(RouteNetlinkMessage),
    /// The dump raced with changes and starts over: drop what was folded so
    /// far instead of counting it twice.
    Restart,
}

/// Dumps `request` (e.g. `GetRoute`) and calls `each` for every answer.
pub fn dump(
    op: &'static str,
    request: RouteNetlinkMessage,
    mut each: impl FnMut(DumpEvent),
) -> Result<(), NetlinkError> {
    let io = |source| NetlinkError::Io { op, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(io)?;
    socket.bind_auto().map_err(io)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;

    let mut recv = Vec::with_capacity(RECV_BUFFER);
    for attempt in 1..=MAX_ATTEMPTS {
        let seq = attempt;
        send_dump_request(&socket, &request, seq).map_err(io)?;
        match read_dump(op, &socket, seq, &mut recv, &mut each)? {
            Outcome::Complete => return Ok(()),
            Outcome::Interrupted => each(DumpEvent::Restart),
        }
    }
    Err(NetlinkError::Interrupted { op, attempts: MAX_ATTEMPTS })
}

/// Sends one `request` (not a dump, e.g. a route lookup) and returns the
/// kernel's single answer.
pub fn request(op: &'static str, request: RouteNetlinkMessage) -> Result<RouteNetlinkMessage, NetlinkError> {
    let io = |source| NetlinkError::Io { op, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(io)?;
    socket.bind_auto().map_err(io)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0).map_err(io)?;
    let mut recv = Vec::with_capacity(RECV_BUFFER);
    socket.recv(&mut recv, 0).map_err(io)?;
    let len = NetlinkBuffer::new_checked(&recv[..])
        .map_err(|e| NetlinkError::Decode { op, detail: e.to_string() })?
        .length() as usize;
    if len == 0 || len > recv.len() {
        return Err(NetlinkError::Decode { op, detail: format!("message length {len} out of bounds") });
    }
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&recv[..len])
        .map_err(|e| NetlinkError::Decode { op, detail: e.to_string() })?;
    match msg.payload {
        NetlinkPayload::InnerMessage(inner) => Ok(inner),
        NetlinkPayload::Error(e) => Err(NetlinkError::Kernel { op, code: e.code.map_or(0, |c| c.get()) }),
        _ => Err(NetlinkError::Decode { op, detail: "no answer".to_owned() }),
    }
}

enum Outcome {
    Complete,
    Interrupted,
}

fn send_dump_request(socket: &Socket, request: &RouteNetlinkMessage, seq: u32) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request.clone()));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0)?;
    Ok(())
}

fn read_dump(
    op: &'static str,
    socket: &Socket,
    seq: u32,
    recv: &mut Vec<u8>,
    each: &mut impl FnMut(DumpEvent),
) -> Result<Outcome, NetlinkError> {
    let mut interrupted = false;
    loop {
        recv.clear();
        socket.recv(recv, 0).map_err(|source| NetlinkError::Io { op, source })?;
        let n = recv.len();
        let mut offset = 0;
        while offset < n {
            let bytes = &recv[offset..n];
            let len = NetlinkBuffer::new_checked(bytes)
                .map_err(|e| NetlinkError::Decode { op, detail: e.to_string() })?
                .length() as usize;
            if len == 0 || len > bytes.len() {
                return Err(NetlinkError::Decode {
                    op,
                    detail: format!("message length {len} out of bounds"),
                });
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
                .map_err(|e| NetlinkError::Decode { op, detail: e.to_string() })?;
            // Messages are 4-byte aligned within one read.
            offset += (len + 3) & !3;
            if msg.header.sequence_number != seq {
                continue; // a late answer to an earlier, restarted attempt
            }
            interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
            match msg.payload {
                NetlinkPayload::InnerMessage(inner) => each(DumpEvent::Message(inner)),
                NetlinkPayload::Done(_) => {
                    return Ok(if interrupted { Outcome::Interrupted } else { Outcome::Complete });
                }
                NetlinkPayload::Error(e) => match e.code {
                    Some(code) => return Err(NetlinkError::Kernel { op, code: code.get() }),
                    None => continue,
                },
                _ => {}
            }
        }
    }
}
