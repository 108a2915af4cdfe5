//! What the client has to show: messages in each room's order, arrivals and departures, rooms entered and parted, answers, notices and errors.

use crate::proto::message::Message;
use crate::proto::secure::keys::PublicKey;
use crate::proto::wire::LeaveReason;

/// What the client has to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message, in its room's sequence order (or replayed history).
    Message {
        /// Its room.
        room: String,
        /// The message.
        message: Message,
        /// True when replayed as history (on join or on request).
        history: bool,
        /// True when the user sent it.
        own: bool,
    },
    /// Someone entered a room.
    Joined {
        /// The room.
        room: String,
        /// Their name.
        name: String,
    },
    /// Someone left a room (or the relay).
    Left {
        /// The room.
        room: String,
        /// Their name.
        name: String,
        /// Why.
        reason: LeaveReason,
        /// What they said as they left (`/quit MESSAGE`), unchecked for the terminal.
        message: Option<String>,
    },
    /// A room's names, answering a who request.
    Who {
        /// The room.
        room: String,
        /// The names, sorted without regard to case.
        names: Vec<String>,
    },
    /// Something the user should know about the connection or a request.
    Notice(String),
    /// The relay has not answered for a while: the client goes on trying (the shell, which
    /// knows the relay's address, says which relay).
    Silent,
    /// Something went wrong with what the user asked.
    Error(String),
    /// The start of the answer to a history request of the user's: `count` messages follow
    /// (as history), then [`Event::HistoryEnd`].
    HistoryStart {
        /// The room.
        room: String,
        /// How many messages follow.
        count: usize,
    },
    /// The end of the answer that [`Event::HistoryStart`] began.
    HistoryEnd {
        /// The room.
        room: String,
    },
    /// The client is in a room, for the first time in this process (it comes back into it
    /// after a rejoin without this).
    Entered {
        /// The room.
        room: String,
    },
    /// The relay refused to let the client in a room (the user is told why).
    NotEntered {
        /// The room.
        room: String,
        /// Why, for the user.
        message: String,
    },
    /// The client left a room it was in (or was entering).
    Parted {
        /// The room.
        room: String,
    },
    /// First contact with this relay: its key, taken for it (the shell pins it, so that a
    /// relay with another key is refused next time).
    RelayKeyLearnt {
        /// The relay's key.
        key: PublicKey,
    },
    /// The relay offered a key other than the one pinned for it: someone may be in between.
    /// The client sends nothing more and is closed.
    RelayKeyChanged {
        /// The key pinned.
        pinned: PublicKey,
        /// The key offered.
        offered: PublicKey,
    },
    /// On entering a room: how many messages came since the user was last there, shown next
    /// (the last 1000 at most) as history.
    Missed {
        /// The room.
        room: String,
        /// How many messages the room had since.
        count: u64,
        /// When the user left.
        since: crate::proto::message::Millis,
    },
}
