// Line and branch coverage of one class from JaCoCo execution data files, as JSON lines:
//   java UnituneCoverage CLASSES_DIR com/example/Focal EXEC...
// prints, per exec file, {"exec": NAME, "lines": {"LINE": [status, branches, covered branches]}}
// (status: 1 not covered, 2 fully covered, 3 partly covered; lines without code are left out).
import java.io.File;
import org.jacoco.core.analysis.Analyzer;
import org.jacoco.core.analysis.CoverageBuilder;
import org.jacoco.core.analysis.IClassCoverage;
import org.jacoco.core.analysis.ICounter;
import org.jacoco.core.analysis.ILine;
import org.jacoco.core.tools.ExecFileLoader;

public class UnituneCoverage {
    public static void main(String[] args) throws Exception {
        File classes = new File(args[0]);
        String className = args[1];
        for (int i = 2; i < args.length; i++) {
            File exec = new File(args[i]);
            ExecFileLoader loader = new ExecFileLoader();
            if (exec.isFile()) {
                loader.load(exec);
            }
            CoverageBuilder builder = new CoverageBuilder();
            Analyzer analyzer = new Analyzer(loader.getExecutionDataStore(), builder);
            analyzer.analyzeAll(new File(classes, className + ".class"));
            StringBuilder out = new StringBuilder("{\"exec\": \"" + exec.getName() + "\", \"lines\": {");
            boolean first = true;
            for (IClassCoverage coverage : builder.getClasses()) {
                for (int line = coverage.getFirstLine(); line > 0 && line <= coverage.getLastLine(); line++) {
                    ILine counters = coverage.getLine(line);
                    if (counters.getStatus() == ICounter.EMPTY) {
                        continue;
                    }
                    out.append(first ? "" : ", ").append('"').append(line).append("\": [")
                        .append(counters.getStatus()).append(", ")
                        .append(counters.getBranchCounter().getTotalCount()).append(", ")
                        .append(counters.getBranchCounter().getCoveredCount()).append(']');
                    first = false;
                }
            }
            System.out.println(out.append("}}"));
        }
    }
}
