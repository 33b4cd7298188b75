//! Response body decoding. (Being written.)
