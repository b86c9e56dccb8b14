//! The cursor channel, fed from a [`CursorFeed`]: the host (a QXL cursor ring through
//! spice-qxl, or the demo) pushes [`CursorCommand`]s; every client's cursor channel sends
//! `CURSOR_INIT` with the current state on connect, then `SET` / `MOVE` / `HIDE` / `TRAIL` /
//! `RESET` as commands arrive.
//!
//! Shapes with a non-zero `unique` are cached on the client: the first `SET` carries
//! `CACHE_ME` and the pixels, later ones `FROM_CACHE` and only the header. The cache holds
//! [`CURSOR_CACHE_SIZE`] shapes per client; the least recently used one is dropped with
//! `INVAL_ONE` to make room, and `RESET` comes right after `INVAL_ALL`.
//!
//! Each client has a bounded queue ([`CURSOR_QUEUE_LIMIT`]); consecutive moves are merged,
//! and a client that falls further behind is resynchronised with the current state instead
//! of buffering without end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use spice_proto::ChannelType;
use spice_proto::caps::Caps;
use spice_proto::cursor::{CursorInit, CursorSet, ServerMessage};
use spice_proto::link::LinkErr;
use spice_proto::messages;
use spice_proto::types::{Cursor, CursorFlags, CursorHeader, CursorType, Point16};

use crate::channel::{ChannelError, ChannelFactory, ChannelHandler, OpenContext, Outbox, Waker};
use crate::session::lock;

/// Shapes cached per client.
pub const CURSOR_CACHE_SIZE: usize = 64;
/// Commands queued per client before it is resynchronised.
pub const CURSOR_QUEUE_LIMIT: usize = 64;

/// A cursor shape, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// Cache id (0: never cached).
    pub unique: u64,
    /// Pixel format.
    pub cursor_type: CursorType,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Hot spot x.
    pub hot_spot_x: u16,
    /// Hot spot y.
    pub hot_spot_y: u16,
    /// Shape data as the cursor type lays it out (ALPHA: `width * height` ARGB u32 LE).
    pub data: Vec<u8>,
}

impl CursorShape {
    fn header(&self) -> CursorHeader {
        CursorHeader {
            unique: self.unique,
            cursor_type: self.cursor_type,
            width: self.width,
            height: self.height,
            hot_spot_x: self.hot_spot_x,
            hot_spot_y: self.hot_spot_y,
        }
    }
}

/// One cursor command from the host.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorCommand {
    /// A new shape at a position.
    Set {
        /// Position.
        position: Point16,
        /// Shown or not.
        visible: bool,
        /// The shape.
        shape: Arc<CursorShape>,
    },
    /// The pointer moved (and is shown).
    Move(Point16),
    /// Hide the pointer.
    Hide,
    /// Pointer trail settings.
    Trail {
        /// Trail length.
        length: u16,
        /// Trail frequency.
        frequency: u16,
    },
    /// Forget the cursor (device reset).
    Reset,
}

impl CursorShape {
    /// A shape parsed from guest memory by spice-qxl (the guest's `u16` type truncated to
    /// the wire's `u8`, as spice-server does).
    pub fn from_qxl(shape: &spice_qxl::parse::CursorShape) -> Self {
        Self {
            unique: shape.unique,
            cursor_type: CursorType(shape.cursor_type as u8),
            width: shape.width,
            height: shape.height,
            hot_spot_x: shape.hot_spot_x,
            hot_spot_y: shape.hot_spot_y,
            data: shape.data.clone(),
        }
    }
}

impl CursorCommand {
    /// A command taken from a QXL cursor ring (spice-qxl's parsed command). The caller
    /// releases the guest resource as spice-qxl's `ConvertedCursor` documents; a device reset
    /// is [`CursorCommand::Reset`].
    pub fn from_qxl(cmd: &spice_qxl::parse::ParsedCursorCmd) -> Self {
        use spice_qxl::parse::CursorOp;
        let p = |p: &spice_qxl::parse::Point16| Point16 { x: p.x, y: p.y };
        match &cmd.op {
            CursorOp::Set {
                position,
                visible,
                shape,
            } => CursorCommand::Set {
                position: p(position),
                visible: *visible,
                shape: Arc::new(CursorShape::from_qxl(shape)),
            },
            CursorOp::Move { position } => CursorCommand::Move(p(position)),
            CursorOp::Hide => CursorCommand::Hide,
            CursorOp::Trail { length, frequency } => CursorCommand::Trail {
                length: *length,
                frequency: *frequency,
            },
        }
    }
}

/// The current cursor state, sent as `CURSOR_INIT`.
#[derive(Debug, Clone, Default)]
struct CursorState {
    position: Point16,
    visible: bool,
    trail_length: u16,
    trail_frequency: u16,
    shape: Option<Arc<CursorShape>>,
}

#[derive(Debug, Default)]
struct ClientQueue {
    commands: VecDeque<CursorCommand>,
    overflowed: bool,
}

struct Subscriber {
    queue: Weak<Mutex<ClientQueue>>,
    waker: Waker,
}

/// The source of cursor commands shared by every client's cursor channel.
#[derive(Default)]
pub struct CursorFeed {
    inner: Mutex<FeedInner>,
}

#[derive(Default)]
struct FeedInner {
    state: CursorState,
    subscribers: Vec<Subscriber>,
}

impl std::fmt::Debug for CursorFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("CursorFeed")
            .field("state", &inner.state)
            .field("subscribers", &inner.subscribers.len())
            .finish()
    }
}

impl CursorFeed {
    /// An empty feed (no shape, hidden).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Applies a command and forwards it to every connected cursor channel.
    pub fn push(&self, cmd: CursorCommand) {
        let mut inner = lock(&self.inner);
        let st = &mut inner.state;
        match &cmd {
            CursorCommand::Set {
                position,
                visible,
                shape,
            } => {
                st.position = *position;
                st.visible = *visible;
                st.shape = Some(shape.clone());
            }
            CursorCommand::Move(p) => {
                st.position = *p;
                st.visible = true;
            }
            CursorCommand::Hide => st.visible = false,
            CursorCommand::Trail { length, frequency } => {
                st.trail_length = *length;
                st.trail_frequency = *frequency;
            }
            // spice-server's cursor_channel_reset: no shape, shown, at 0,0, no trail.
            CursorCommand::Reset => {
                *st = CursorState {
                    visible: true,
                    ..CursorState::default()
                }
            }
        }
        inner.subscribers.retain(|s| {
            let Some(q) = s.queue.upgrade() else {
                return false;
            };
            let mut q = lock(&q);
            let merge = matches!(
                (q.commands.back(), &cmd),
                (Some(CursorCommand::Move(_)), CursorCommand::Move(_))
            );
            if merge {
                q.commands.pop_back();
            }
            if q.commands.len() >= CURSOR_QUEUE_LIMIT {
                q.commands.clear();
                q.overflowed = true;
            } else if !q.overflowed {
                q.commands.push_back(cmd.clone());
            }
            drop(q);
            s.waker.wake();
            true
        });
    }

    fn subscribe(&self, waker: Waker) -> (Arc<Mutex<ClientQueue>>, CursorState) {
        let q = Arc::new(Mutex::new(ClientQueue::default()));
        let mut inner = lock(&self.inner);
        inner.subscribers.push(Subscriber {
            queue: Arc::downgrade(&q),
            waker,
        });
        (q, inner.state.clone())
    }

    fn snapshot(&self) -> CursorState {
        lock(&self.inner).state.clone()
    }
}

/// Creates [`CursorChannel`]s fed from one [`CursorFeed`].
#[derive(Debug)]
pub struct CursorChannelFactory {
    feed: Arc<CursorFeed>,
}

impl CursorChannelFactory {
    /// A factory for channel id 0.
    pub fn new(feed: Arc<CursorFeed>) -> Self {
        Self { feed }
    }
}

impl ChannelFactory for CursorChannelFactory {
    fn channel_type(&self) -> ChannelType {
        ChannelType::CURSOR
    }
    fn channel_id(&self) -> u8 {
        0
    }
    fn caps(&self) -> Caps {
        Caps::new()
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        let (queue, initial) = self.feed.subscribe(ctx.waker);
        Ok(Box::new(CursorChannel {
            feed: self.feed.clone(),
            queue,
            initial: Some(initial),
            cache: VecDeque::new(),
        }))
    }
}

/// The cursor channel of one client.
pub struct CursorChannel {
    feed: Arc<CursorFeed>,
    queue: Arc<Mutex<ClientQueue>>,
    initial: Option<CursorState>,
    /// Uniques cached on the client, most recently used last.
    cache: VecDeque<u64>,
}

impl std::fmt::Debug for CursorChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorChannel")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl CursorChannel {
    /// Encodes `shape` for this client: from its cache, or with pixels (and `CACHE_ME`
    /// when it has a unique id), evicting the least recently used shape if the cache is
    /// full. Queues the `INVAL_ONE` itself.
    fn wire_cursor<'s>(
        &mut self,
        shape: Option<&'s CursorShape>,
        out: &mut Outbox<'_>,
    ) -> Result<Cursor<'s>, ChannelError> {
        let Some(shape) = shape else {
            return Ok(Cursor {
                flags: CursorFlags::NONE,
                header: None,
                data: &[],
            });
        };
        if shape.unique != 0 {
            if let Some(i) = self.cache.iter().position(|&u| u == shape.unique) {
                self.cache.remove(i);
                self.cache.push_back(shape.unique);
                return Ok(Cursor {
                    flags: CursorFlags::FROM_CACHE,
                    header: Some(shape.header()),
                    data: &[],
                });
            }
            if self.cache.len() >= CURSOR_CACHE_SIZE {
                if let Some(old) = self.cache.pop_front() {
                    out.send(&ServerMessage::InvalOne(old))?;
                }
            }
            self.cache.push_back(shape.unique);
            return Ok(Cursor {
                flags: CursorFlags::CACHE_ME,
                header: Some(shape.header()),
                data: &shape.data,
            });
        }
        Ok(Cursor {
            flags: CursorFlags::empty(),
            header: Some(shape.header()),
            data: &shape.data,
        })
    }

    fn send_command(
        &mut self,
        cmd: &CursorCommand,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        match cmd {
            CursorCommand::Set {
                position,
                visible,
                shape,
            } => {
                let cursor = self.wire_cursor(Some(shape), out)?;
                out.send(&ServerMessage::Set(CursorSet {
                    position: *position,
                    visible: u8::from(*visible),
                    cursor,
                }))
            }
            CursorCommand::Move(p) => out.send(&ServerMessage::Move(*p)),
            CursorCommand::Hide => out.send(&ServerMessage::Hide),
            CursorCommand::Trail { length, frequency } => out.send(&ServerMessage::Trail {
                length: *length,
                frequency: *frequency,
            }),
            // As spice-server: the cache is invalidated, then RESET.
            CursorCommand::Reset => {
                self.cache.clear();
                out.send(&ServerMessage::InvalAll)?;
                out.send(&ServerMessage::Reset)
            }
        }
    }
}

impl ChannelHandler for CursorChannel {
    fn on_connect(&mut self, _now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let st = self.initial.take().unwrap_or_else(|| self.feed.snapshot());
        let cursor = self.wire_cursor(st.shape.as_deref(), out)?;
        out.send(&ServerMessage::Init(CursorInit {
            position: st.position,
            trail_length: st.trail_length,
            trail_frequency: st.trail_frequency,
            visible: u8::from(st.visible),
            cursor,
        }))
    }

    fn handle_message(
        &mut self,
        msg: &messages::ClientMessage<'_>,
        _now: Instant,
        _out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        // The cursor channel has no client messages beyond the base ones.
        Err(ChannelError::Protocol {
            channel: ChannelType::CURSOR,
            what: format!("unexpected {}", msg.name()),
        })
    }

    fn poll(&mut self, _now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        loop {
            if !out.can_send() {
                return Ok(());
            }
            let next = {
                let mut q = lock(&self.queue);
                if q.overflowed {
                    q.overflowed = false;
                    q.commands.clear();
                    None
                } else {
                    match q.commands.pop_front() {
                        Some(c) => Some(c),
                        None => return Ok(()),
                    }
                }
            };
            match next {
                Some(cmd) => self.send_command(&cmd, out)?,
                None => {
                    // Fell behind: send the current state as one SET (or HIDE).
                    let st = self.feed.snapshot();
                    match st.shape {
                        Some(shape) => self.send_command(
                            &CursorCommand::Set {
                                position: st.position,
                                visible: st.visible,
                                shape,
                            },
                            out,
                        )?,
                        None => out.send(&ServerMessage::Hide)?,
                    }
                }
            }
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_qxl::parse::{self as q, CursorOp, ParsedCursorCmd, ReleaseInfoExt};

    fn cmd(op: CursorOp) -> ParsedCursorCmd {
        ParsedCursorCmd {
            release: ReleaseInfoExt {
                info_offset: 0,
                group_id: 0,
            },
            op,
        }
    }

    #[test]
    fn qxl_cursor_commands_convert() {
        let shape = q::CursorShape {
            unique: 9,
            cursor_type: 0x100 | 1,
            width: 8,
            height: 8,
            hot_spot_x: 1,
            hot_spot_y: 2,
            data: vec![7; 16],
        };
        let c = CursorCommand::from_qxl(&cmd(CursorOp::Set {
            position: q::Point16 { x: -1, y: 3 },
            visible: true,
            shape,
        }));
        let CursorCommand::Set {
            position,
            visible,
            shape,
        } = c
        else {
            panic!("{c:?}")
        };
        assert_eq!((position.x, position.y, visible), (-1, 3, true));
        // The u16 type is truncated to the wire's u8, as spice-server does.
        assert_eq!(shape.cursor_type, CursorType::MONO);
        assert_eq!(
            (shape.unique, shape.hot_spot_y, shape.data.len()),
            (9, 2, 16)
        );
        assert_eq!(
            CursorCommand::from_qxl(&cmd(CursorOp::Move {
                position: q::Point16 { x: 4, y: 5 }
            })),
            CursorCommand::Move(Point16 { x: 4, y: 5 })
        );
        assert_eq!(
            CursorCommand::from_qxl(&cmd(CursorOp::Hide)),
            CursorCommand::Hide
        );
        assert_eq!(
            CursorCommand::from_qxl(&cmd(CursorOp::Trail {
                length: 3,
                frequency: 4
            })),
            CursorCommand::Trail {
                length: 3,
                frequency: 4
            }
        );
    }

    #[test]
    fn feed_queue_is_bounded_and_resyncs() {
        let feed = CursorFeed::new();
        let (q, st) = feed.subscribe(Waker::noop());
        assert!(st.shape.is_none());
        for k in 0..(CURSOR_QUEUE_LIMIT as u16 * 3) {
            feed.push(CursorCommand::Trail {
                length: k,
                frequency: 0,
            });
        }
        let q = lock(&q);
        assert!(q.commands.len() <= CURSOR_QUEUE_LIMIT);
        assert!(q.overflowed);
        // Moves merge.
        let feed = CursorFeed::new();
        let (q, _) = feed.subscribe(Waker::noop());
        for k in 0..500 {
            feed.push(CursorCommand::Move(Point16 { x: k, y: 0 }));
        }
        let q = lock(&q);
        assert_eq!(
            q.commands.iter().collect::<Vec<_>>(),
            [&CursorCommand::Move(Point16 { x: 499, y: 0 })]
        );
    }
}
