from benchsmith.cli.app import main

main()
