//! `e2e-load`: this package's copy of `callbridge-load` (the same
//! `callbridge_load::main` the real binary calls), so the end-to-end tests
//! always run the code of this build. It presents itself as `callbridge-load`
//! (the program name clap puts in usage and error messages).

fn main() -> ! {
    callbridge_load::main(
        std::iter::once("callbridge-load".into()).chain(std::env::args_os().skip(1)),
    )
}
