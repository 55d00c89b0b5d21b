use clap::Parser;

fn main() {
    let cli = clan_nats::cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match clan_nats::cli::run(cli, &mut stdout) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
