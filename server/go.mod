module statuswatch/server

go 1.26.8
