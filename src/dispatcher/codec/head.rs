//! Response head parsing and the framing decision. (Being written.)
