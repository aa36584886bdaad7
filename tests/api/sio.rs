//! The Socket.IO client of the API tests lives in the testkit (it is shared with the capacity
//! load tool); `Sio::connect` takes the app's address.

pub use talkconnect_testkit::gateway::Sio;
