use clap::Parser;

fn main() {
    let cli = clan_nats::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = clan_nats::cli::run(cli, &mut stdout) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
