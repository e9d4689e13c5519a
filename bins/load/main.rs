//! `callbridge-load`: the load, soak and fault harness (the code is the
//! library, `callbridge_load`).

fn main() -> ! {
    callbridge_load::main(std::env::args_os())
}
