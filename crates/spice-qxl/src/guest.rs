//! x
pub struct GuestDriver;
#[derive(Debug)]
pub struct GuestError;
