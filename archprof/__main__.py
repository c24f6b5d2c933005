from archprof.cli import main

main()
