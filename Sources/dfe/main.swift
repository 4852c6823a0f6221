import DFECommands

await DFE.main()
