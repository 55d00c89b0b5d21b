use clap::Parser;

fn main() {
    let cli = clan_nats::cli::Cli::parse();
    let json = cli.json;
    let mut stdout = std::io::stdout().lock();
    match clan_nats::cli::run(cli, &mut stdout) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) if e.is_broken_pipe() => {}
        Err(e) => {
            if json {
                use std::io::Write;
                // The reader of --json gets the error as JSON on standard output too.
                let _ = writeln!(stdout, "{}", e.to_json());
            }
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
