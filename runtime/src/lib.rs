pub mod agent;
pub mod alert;
pub mod clock;
pub mod fs;
pub mod loader;
pub mod object;
pub mod procscan;
pub mod users;
