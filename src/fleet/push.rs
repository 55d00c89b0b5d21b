//! `clan-nats push`: send changed account JWTs to running servers.
