//! Notifications, the pure part: which pipeline Events are notices ([`notice`]), what each receiver
//! format gets ([`format`]), and where delivery stands ([`cursor`]). The delivery itself (watching
//! Events, retrying, recording) is `controller::notifier`.

pub mod cursor;
pub mod format;
pub mod notice;
