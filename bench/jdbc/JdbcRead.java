import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

/**
 * Reads one query's result through JDBC drivers in alternating timed rounds, as a BI tool
 * reads it: ResultSet.next over every row, with the typed getter of each column.
 *
 * <p>Arguments: rounds, expected rows, the SQL (three columns: BIGINT id, BIGINT doubled,
 * STRING label), then one or more targets as name=jdbc-url. Each target reads once to warm
 * up (rows and sum(doubled) checked), then every round reads every target, the order
 * reversed each round. Prints one JSON line per read: round (0 is the warm-up), name,
 * seconds from executeQuery to the last row, rows.
 */
public final class JdbcRead {
  private JdbcRead() {}

  public static void main(String[] args) throws Exception {
    int rounds = Integer.parseInt(args[0]);
    long expected = Long.parseLong(args[1]);
    String sql = args[2];
    List<String[]> targets = new ArrayList<>();
    for (int i = 3; i < args.length; i++) {
      targets.add(args[i].split("=", 2));
    }
    List<Connection> connections = new ArrayList<>();
    for (String[] target : targets) {
      Properties properties = new Properties();
      properties.setProperty("user", System.getProperty("bench.user", "bench"));
      connections.add(DriverManager.getConnection(target[1], properties));
    }
    for (int round = 0; round <= rounds; round++) {
      for (int k = 0; k < targets.size(); k++) {
        int index = round % 2 == 0 ? k : targets.size() - 1 - k;
        read(round, targets.get(index)[0], connections.get(index), sql, expected);
      }
    }
    for (Connection connection : connections) {
      try {
        connection.close();
      } catch (Exception ignored) {
        // a driver that fails on close has still delivered its rows
      }
    }
    System.exit(0); // drivers leave non-daemon threads behind
  }

  private static void read(int round, String name, Connection connection, String sql, long expected)
      throws Exception {
    long rows = 0;
    long doubled = 0;
    long chars = 0;
    long started = System.nanoTime();
    long executed;
    try (Statement statement = connection.createStatement()) {
      // Hive's default is 1,000 rows a round trip; the Flight SQL driver streams regardless
      statement.setFetchSize(Integer.getInteger("bench.fetchSize", 10000));
      try (ResultSet result = statement.executeQuery(sql)) {
        executed = System.nanoTime();
        while (result.next()) {
          long id = result.getLong(1);
          doubled += result.getLong(2);
          chars += result.getString(3).length();
          rows += id >= 0 ? 1 : 0;
        }
      }
    }
    double seconds = (System.nanoTime() - started) / 1e9;
    if (rows != expected || doubled != expected * (expected - 1)) {
      throw new IllegalStateException(
          name + " read " + rows + " rows, sum(doubled) " + doubled + "; expected " + expected);
    }
    System.out.printf(
        "{\"round\": %d, \"name\": \"%s\", \"seconds\": %.4f, \"execute_seconds\": %.4f, \"rows\": %d,"
            + " \"label_chars\": %d}%n",
        round, name, seconds, (executed - started) / 1e9, rows, chars);
    System.out.flush();
  }
}
