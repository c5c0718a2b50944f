// `gameserver`: everything lives in the HotswapEngine library, so tests and
// tools link the same code; this is only the process's entry point.
import HotswapEngine

GameServerCommand.main()
