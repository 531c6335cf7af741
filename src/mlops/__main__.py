from mlops.cli.app import main

main()
