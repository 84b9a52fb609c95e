fn main() {
    std::process::exit(chkfs::cli::main());
}
