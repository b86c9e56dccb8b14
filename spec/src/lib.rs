//! The protocol as data: `messages.csv` lists every message kind; the tests check the code against it.
